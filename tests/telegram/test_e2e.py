"""``citebot telegram`` end to end: the real command, long polling a fake Bot API server on 127.0.0.1.

One bot process serves the whole module; each test plays its own users and
chats, so tests do not see each other's messages. Where a test checks that the
bot did *not* answer something, it then sends a message in the same chat that
is answered: the bot handles a chat's updates in order, so once that answer
is there, the earlier message has been dealt with.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

import pytest

from bot.telegram.buttons import Button, answer_buttons, decode_button
from index.answer import ArticleRef, Passage, answer
from index.search.library_index import ArticleData
from index.search.retrieve import Searcher
from tests.support.fake_telegram import TOKEN, BotMessage, FakeTelegram, Fault, parse_html
from tests.support.paths import BENCHMARKS
from tests.support.telegram_harness import BotProcess, run_load

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

SEED_TITLE = "Turkey launches 'limited' operation to retake Idlib towns"
SEED_QUESTIONS = BENCHMARKS / "seed_questions.json"
_ids = itertools.count(10_000)


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-bot")
    process = BotProcess(server, workdir, workdir / "data").start()
    yield process
    code = process.terminate()
    assert code == 0, process.stderr
    assert TOKEN not in process.stderr


def _person(server: FakeTelegram) -> tuple[dict, dict]:
    user = server.user(next(_ids), "Ann")
    return user, server.private_chat(user)


def _ask(server: FakeTelegram, question: str) -> tuple[dict, BotMessage]:
    user, chat = _person(server)
    message = server.send_text(chat, user, question)
    return message, server.wait_reply(message)[0]


def _quote(message: BotMessage) -> tuple[str, str, str]:
    """The quoted passage, its bold sentence, and the position line of an answer."""
    quote = re.search(r"<blockquote>(.*?)</blockquote>", message.html, re.DOTALL)
    bold = re.search(r"<b>(.*?)</b>", message.html, re.DOTALL)
    place = re.search(r"<i>(.*?)</i>", message.html)
    assert quote and bold and place, message.html
    return parse_html(quote.group(1)), parse_html(bold.group(1)), place.group(1)


def _answered(server: FakeTelegram, query_id: str) -> dict:
    return server.wait_for(lambda: server.callback_answers.get(query_id), 30, f"an answer to {query_id}")


def test_command_menu_is_set_at_start_up(bot: BotProcess, server: FakeTelegram) -> None:
    assert [c["command"] for c in server.commands or []] == ["start", "help", "articles", "use", "ask"]
    assert server.calls_to("deleteWebhook")  # polling starts by making sure no webhook is set


def test_start_names_the_article_and_suggests_questions_it_answers(
    bot: BotProcess, server: FakeTelegram, seed_searcher: Searcher
) -> None:
    _, reply = _ask(server, "/start")
    assert f"“{SEED_TITLE}”" in reply.text
    examples = [line[2:] for line in reply.text.splitlines() if line.startswith("• ")]
    assert 2 <= len(examples) <= 3
    for example in examples:
        assert answer(seed_searcher, example).found, example


def test_help_and_source(bot: BotProcess, server: FakeTelegram) -> None:
    _, help_reply = _ask(server, "/help")
    assert "/ask" in help_reply.text and "@CiteTestBot" in help_reply.text and "More context" in help_reply.text
    _, source = _ask(server, "/source")
    lines = source.text.splitlines()
    assert lines[0] == SEED_TITLE and lines[1] == "20 February, 2020" and lines[3] == "From: idlib-article.txt"
    assert re.fullmatch(r"20 paragraphs, \d+ words", lines[2])


def test_a_question_is_answered_with_the_right_quote(bot: BotProcess, server: FakeTelegram) -> None:
    question, reply = _ask(server, "Which two roads meet at Saraqeb?")
    quote, bold, place = _quote(reply)
    assert place == "paragraph 9 of 20"
    assert "the M4 and M5" in bold and bold in quote
    assert quote.startswith("Multiple video clips purported to show Turkish tanks")
    assert set(reply.buttons) == {"More context", "Next match"}
    chat_id = question["chat"]["id"]
    actions = [c for c in server.calls_to("sendChatAction") if c.params["chat_id"] == chat_id]
    assert actions and actions[0].params["action"] == "typing" and actions[0].at < reply.at


def test_more_context_shows_the_neighbouring_paragraphs(bot: BotProcess, server: FakeTelegram, seed) -> None:
    _, reply = _ask(server, "Which two roads meet at Saraqeb?")
    query = server.press(reply, "More context")
    assert _answered(server, query)["text"] is None
    context = server.wait_for(lambda: server.replies_to(reply.chat_id, reply.message_id), 30, "the context")
    assert len(context) == 1
    text = context[0].text
    for number in (8, 9, 10):
        assert seed.paragraph(number - 1) in text and f"paragraph {number} of 20" in text
    assert "paragraph 7 of 20" not in text and "paragraph 11 of 20" not in text
    bold = re.findall(r"<b>(.*?)</b>", context[0].html, re.DOTALL)
    assert len(bold) == 1 and "the M4 and M5" in bold[0]  # the answering sentence is still marked


def test_next_match_pages_through_the_passages(bot: BotProcess, server: FakeTelegram, seed_searcher) -> None:
    question = "Which two roads meet at Saraqeb?"
    expected = answer(seed_searcher, question, k=3).passages
    _, reply = _ask(server, question)
    for rank in (1, 2):
        query = server.press(reply, "Next match")
        _answered(server, query)
        now = server.wait_for(lambda r=rank: len(server.current(reply).edits) == r and server.current(reply), 30)
        quote, bold, place = _quote(now)
        assert quote == expected[rank].text
        assert place == f"paragraph {expected[rank].paragraph} of 20 · match {rank + 1}"
        assert bold == expected[rank].sentence
    assert set(server.current(reply).buttons) == {"More context", "Next match"}


def test_not_in_the_article_then_the_closest_passage(bot: BotProcess, server: FakeTelegram, seed_searcher) -> None:
    question = "How do I bake sourdough bread?"
    nearest = answer(seed_searcher, question).passages[0]
    _, reply = _ask(server, question)
    assert reply.text == "The article does not answer that."
    assert list(reply.buttons) == ["Show closest passage"]
    query = server.press(reply, "Show closest passage")
    _answered(server, query)
    shown = server.wait_for(lambda: server.current(reply).edits and server.current(reply), 30, "the closest passage")
    assert shown.text.startswith("The article does not answer that. The nearest I found:")
    quote, _, place = _quote(shown)
    assert quote == nearest.text and place == f"paragraph {nearest.paragraph} of 20"
    assert set(shown.buttons) == {"More context", "Next match"}


def test_stale_buttons_get_a_polite_answer(bot: BotProcess, server: FakeTelegram) -> None:
    _, reply = _ask(server, "Who denied the claim?")
    real = decode_button(reply.buttons["More context"])
    assert real is not None
    answers = {}
    for name, data in {
        "garbage": "definitely-not-ours",
        "other version": Button("next", real.article, "00000000", rank=1).encode(),
        "no such article": Button("next", 999_999, real.fingerprint, rank=1).encode(),
        "out of range": Button("context", real.article, real.fingerprint, paragraph=99).encode(),
    }.items():
        answers[name] = _answered(server, server.press_data(reply.chat_id, reply.message_id, data))["text"]
    assert answers == {
        "garbage": "This button no longer works. Please ask the question again.",
        "other version": "This button belongs to an older version of the article. Please ask the question again.",
        "no such article": "The article of this button is no longer in the library. Please ask the question again.",
        "out of range": "This button no longer works. Please ask the question again.",
    }
    assert not server.current(reply).edits and not server.replies_to(reply.chat_id, reply.message_id)


def test_buttons_work_without_any_memory_of_the_message(
    bot: BotProcess, server: FakeTelegram, seed_data: ArticleData
) -> None:
    """A button on a message the bot has no record of: what it needs is in its data and the message."""
    user, chat = _person(server)
    question = server.send_text(chat, user, "Who withdrew from Nayrab?")
    server.wait_reply(question)
    first = answer_buttons(_fake_passage(seed_data, 8))
    markup = {"inline_keyboard": [[{"text": label, "callback_data": data} for label, data in first]]}
    old = server.add_bot_message(chat, "an answer from yesterday", question["message_id"], markup)
    query = server.press(old, "Next match")
    assert _answered(server, query)["text"] is None
    edited = server.wait_for(lambda: server.current(old).edits and server.current(old), 30, "the edit")
    assert edited.text.endswith("· match 2")


def _fake_passage(data: ArticleData, paragraph: int) -> Passage:
    start, end = data.paragraphs[paragraph - 1]
    ref = ArticleRef.of(data.record)
    return Passage(data.text[start:end], paragraph, len(data.paragraphs), 1.0, (), start, end, ref)


def test_groups_only_when_mentioned_replied_to_or_asked(bot: BotProcess, server: FakeTelegram) -> None:
    group = server.group_chat(-1001234567)
    ann, bob = server.user(next(_ids), "Ann"), server.user(next(_ids), "Bob")
    ignored = [
        server.send_text(group, ann, "Which two roads meet at Saraqeb?"),
        server.send_text(group, bob, "/ask@SomeOtherBot Which two roads meet at Saraqeb?"),
        server.send_sticker(group, ann),
        server.send_text(group, bob, "I think @CiteTestBotter knows"),
    ]
    mention = server.send_text(group, ann, "@citetestbot which two roads meet at Saraqeb?")
    answer_ = server.wait_reply(mention)[0]
    assert "paragraph 9 of 20" in answer_.text
    follow_up = server.send_text(group, bob, "Who denied the claim?", reply_to=answer_.message_id)
    assert "Ankara has denied the claim." in server.wait_reply(follow_up)[0].text
    asked = server.send_text(group, bob, "/ask Who withdrew from Nayrab?")
    assert "paragraph 8 of 20" in server.wait_reply(asked)[0].text
    addressed = server.send_text(group, ann, "/ask@CiteTestBot How many people have fled their homes?")
    assert "paragraph 17 of 20" in server.wait_reply(addressed)[0].text
    empty = server.send_text(group, ann, "/ask")
    assert server.wait_reply(empty)[0].text.startswith("Ask like this: /ask")
    for message in ignored:
        assert not server.replies_to(group["id"], message["message_id"])
    assert len(server.messages_in(group["id"])) == 5


def test_non_text_messages_get_one_line(bot: BotProcess, server: FakeTelegram) -> None:
    user, chat = _person(server)
    sent = [
        server.send_sticker(chat, user),
        server.send_photo(chat, user),
        server.send_voice(chat, user),
    ]
    for message in sent:
        replies = server.wait_reply(message)
        assert [r.text for r in replies] == ["Please send me a text question; I can only read text."]
    document = server.send_document(chat, user)  # not an admin: a polite no, and nothing is downloaded
    assert [r.text for r in server.wait_reply(document)] == [
        "Sorry, only the bot's admins can add articles. Please send me a text question instead."
    ]
    assert not server.calls_to("getFile")


def test_unusable_questions_get_one_line(bot: BotProcess, server: FakeTelegram) -> None:
    _, reply = _ask(server, "x" * 1200)
    assert reply.text == "The question is too long (1200 characters; the limit is 1000)."
    _, reply = _ask(server, "/frobnicate")
    assert reply.text == "I don't know that command. /help lists what I can do."


def test_nothing_from_the_article_or_the_user_can_break_the_html(bot: BotProcess, server: FakeTelegram) -> None:
    for question in ("<b>Who</b> denied & the <claim>?", "What about </blockquote><i>?", "&amp; &lt; &#0; <"):
        _, reply = _ask(server, question)
        assert reply.text
    refused = [c for c in server.calls if c.status == 400]
    assert not refused, [(c.method, c.description) for c in refused]


def test_inline_mode_offers_the_top_quotes(bot: BotProcess, server: FakeTelegram) -> None:
    user = server.user(next(_ids))
    query = server.inline(user, "Which two roads meet at Saraqeb?")
    results = server.wait_for(lambda: server.inline_answers.get(query), 30, "inline results")["results"]
    assert 1 <= len(results) <= 5 and len({r["id"] for r in results}) == len(results)
    top = results[0]["input_message_content"]
    assert top["parse_mode"] == "HTML"
    assert "the M4 and M5" in parse_html(top["message_text"]) and "paragraph 9 of 20" in top["message_text"]
    assert results[0]["description"] == f"{SEED_TITLE} · paragraph 9 of 20"  # names its article
    off_topic = server.inline(user, "How do I bake sourdough bread?")
    assert server.wait_for(lambda: server.inline_answers.get(off_topic), 30)["results"] == []


def test_flood_control_is_waited_out_and_the_reply_arrives(bot: BotProcess, server: FakeTelegram) -> None:
    server.inject("sendMessage", Fault(status=429, retry_after=1))
    user, chat = _person(server)
    question = server.send_text(chat, user, "Who denied the claim?")
    reply = server.wait_reply(question)
    assert len(reply) == 1 and "Ankara has denied the claim." in reply[0].text
    attempts = [c for c in server.calls_to("sendMessage") if c.params["chat_id"] == chat["id"]]
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0  # it waited as long as it was told


def test_server_errors_and_dropped_connections_are_retried(bot: BotProcess, server: FakeTelegram) -> None:
    server.inject("sendMessage", Fault(status=500), Fault(drop=True))
    user, chat = _person(server)
    question = server.send_text(chat, user, "Who withdrew from Nayrab?")
    reply = server.wait_reply(question)
    assert len(reply) == 1 and "paragraph 8 of 20" in reply[0].text
    attempts = [c.status for c in server.calls_to("sendMessage") if c.params["chat_id"] == chat["id"]]
    assert attempts == [500, 0, 200]


def test_polling_survives_a_failing_get_updates(bot: BotProcess, server: FakeTelegram) -> None:
    before = len(server.calls_to("getUpdates"))
    server.inject("getUpdates", Fault(status=500), Fault(drop=True))
    _ask(server, "/help")  # ends the long poll in flight, so the next ones meet the failures

    def failed() -> list:
        statuses = [c.status for c in server.calls_to("getUpdates")[before:]]
        return statuses if 500 in statuses and 0 in statuses else []

    server.wait_for(failed, 30, "getUpdates to fail twice")
    _, reply = _ask(server, "Who denied the claim?")
    assert "Ankara has denied the claim." in reply.text


def test_a_failure_is_logged_and_the_user_told_briefly(bot: BotProcess, server: FakeTelegram) -> None:
    server.inject("sendMessage", Fault(status=400, description="Bad Request: something unexpected"))  # not retried
    user, chat = _person(server)
    question = server.send_text(chat, user, "Who denied the claim?")
    reply = server.wait_reply(question)
    assert [r.text for r in reply] == ["Sorry, something went wrong while answering. Please try again."]
    log = server.wait_for(lambda: "handling an update failed" in bot.stderr and bot.stderr, 10, "the error log")
    assert "Something unexpected" in log  # python-telegram-bot drops "Bad Request: "


def test_fifty_chats_asking_four_questions_each(bot: BotProcess, server: FakeTelegram) -> None:
    """The load scenario: every question answered exactly once, in order within each chat; prints the figures."""
    data = json.loads(SEED_QUESTIONS.read_text())
    questions = [q["question"] for q in data["answerable"]] + data["offtopic"]
    result = run_load(server, questions, chats=50, per_chat=4)
    print(f"\ntelegram load: 50 chats x 4 questions: {result.summary()}")
    assert result.problems == []
    assert result.questions == 200
