"""``citebot telegram`` with an allowlist, a long article full of HTML-like text, debug logging, and SIGTERM.

One bot process serves the module; the last test stops it with SIGTERM while
a reply is still being worked out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.telegram.split import MAX_MESSAGE, utf16_len
from index.reading.ingest import read_article
from tests.support.fake_telegram import TOKEN, FakeTelegram, Fault, parse_html
from tests.support.telegram_harness import BotProcess

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

ALLOWED = (111, 222)
REFUSAL = "Sorry, this bot is private: it answers only the people it was set up for."
KEEPER = "The lighthouse keeper, Ada <Moss> & Sons, repaints the tower every seven years."


def _write_article(path: Path) -> None:
    sentences = []
    for i in range(1, 61):
        sentences.append(
            f"Crane {i} at the north quay lifted {i * 7} containers on shift {i}, "
            "and the R&D team noted that load < capacity."
        )
        if i == 31:
            sentences.append(KEEPER)
    paragraphs = [
        "Harbour <report> & notes",
        "The harbour of Port Ellis handles grain, timber and containers for the whole valley.",
        " ".join(sentences),
        "Fog closes the harbour mouth on about twenty mornings a year.",
    ]
    path.write_text("\n\n".join(paragraphs) + "\n")


@pytest.fixture(scope="module")
def article_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("article") / "harbour.txt"
    _write_article(path)
    return path


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, article_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-private")
    process = BotProcess(
        server,
        workdir,
        workdir / "data",
        CITEBOT_ARTICLE=str(article_path),
        TELEGRAM_ALLOWED_USERS=",".join(map(str, ALLOWED)),
        CITEBOT_LOG_LEVEL="DEBUG",
    ).start()
    yield process
    process.terminate()


def test_strangers_get_one_polite_refusal_and_nothing_more(bot: BotProcess, server: FakeTelegram) -> None:
    stranger = server.user(999, "Eve")
    chat = server.private_chat(stranger)
    first = server.send_text(chat, stranger, "How often is the lighthouse tower repainted?")
    second = server.send_text(chat, stranger, "/start")
    third = server.send_sticker(chat, stranger)
    inline = server.inline(stranger, "lighthouse")
    assert [r.text for r in server.wait_reply(first)] == [REFUSAL]
    assert server.wait_for(lambda: server.inline_answers.get(inline), 30)["results"] == []
    # a button press in the same chat is handled after the messages before it: then they have all been seen
    press = server.press_data(chat["id"], first["message_id"], "n:00000000:1", stranger)
    assert server.wait_for(lambda: press in server.callback_answers, 30)
    assert server.callback_answers[press]["text"] is None  # refused already: a silent answer
    assert not server.replies_to(chat["id"], second["message_id"]) and not server.replies_to(
        chat["id"], third["message_id"]
    )
    assert len(server.messages_in(chat["id"])) == 1


def test_allowed_users_get_answers_in_private_and_in_groups(bot: BotProcess, server: FakeTelegram) -> None:
    friend, stranger = server.user(ALLOWED[1], "Ann"), server.user(998, "Mallory")
    group = server.group_chat(-100777)
    ignored = server.send_text(group, stranger, "just chatting about fog")
    refused = server.send_text(group, stranger, "@CiteTestBot how many mornings is the harbour closed by fog?")
    asked = server.send_text(group, friend, "@CiteTestBot how many mornings is the harbour closed by fog?")
    reply = server.wait_reply(asked)[0]
    assert "twenty mornings" in reply.text and "paragraph 3 of 3" in reply.text
    assert [r.text for r in server.replies_to(group["id"], refused["message_id"])] == [REFUSAL]
    assert not server.replies_to(group["id"], ignored["message_id"])


def test_a_long_answer_is_split_on_sentences_and_every_part_is_accepted(
    bot: BotProcess, server: FakeTelegram, article_path: Path
) -> None:
    article = read_article(article_path)
    long_paragraph = article.paragraph(1)
    assert len(long_paragraph) > MAX_MESSAGE
    user = server.user(ALLOWED[0], "Ann")
    question = server.send_text(
        server.private_chat(user), user, "How often is the <lighthouse> tower repainted & by whom?"
    )

    def answered() -> list:
        replies = server.replies_to(user["id"], question["message_id"])
        return replies if replies and replies[-1].buttons else []

    parts = server.wait_for(answered, 30, "the last part, with the buttons")
    assert len(parts) >= 2
    for part in parts:
        assert utf16_len(part.html) <= MAX_MESSAGE and len(part.text) <= MAX_MESSAGE
        assert parse_html(part.html)  # Telegram accepted it; this is what it parsed
    for part in parts[:-1]:
        assert part.text.endswith(".") and not part.buttons  # cut at a sentence end; buttons on the last part
    joined = " ".join(" ".join(p.text.split()) for p in parts)
    assert joined == " ".join(long_paragraph.split()) + f" “{article.label}”, paragraph 2 of 3"
    bold = [parse_html(b) for p in parts for b in re.findall(r"<b>(.*?)</b>", p.html, re.DOTALL)]
    assert bold == ["The lighthouse keeper, Ada <Moss> & Sons, repaints the tower every seven years."]
    assert set(parts[-1].buttons) == {"More context", "Next match"}

    query = server.press(parts[-1], "More context")
    assert server.wait_for(lambda: query in server.callback_answers, 30)
    context = server.wait_for(lambda: server.replies_to(user["id"], parts[-1].message_id), 30, "the context")
    assert "paragraph 1 of 3" in context[0].text
    server.wait_for(lambda: "paragraph 3 of 3" in server.replies_to(user["id"], parts[-1].message_id)[-1].text, 30)
    assert all(utf16_len(m.html) <= MAX_MESSAGE for m in server.replies_to(user["id"], parts[-1].message_id))


def test_next_match_onto_a_long_passage_edits_then_sends_the_rest(bot: BotProcess, server: FakeTelegram) -> None:
    user = server.user(ALLOWED[0], "Ann")
    question = server.send_text(server.private_chat(user), user, "How many mornings is the harbour closed by fog?")
    reply = server.wait_reply(question)[0]
    assert "paragraph 3 of 3" in reply.text

    def rest() -> list:
        replies = server.replies_to(user["id"], question["message_id"])
        return replies if len(replies) >= 2 and replies[-1].buttons else []

    for rank in (1, 2):  # the long paragraph 2 is the second or third match
        server.press(reply, "Next match")
        shown = server.wait_for(lambda r=rank: len(server.current(reply).edits) == r and server.current(reply), 30)
        if shown.text.startswith("Crane 1"):
            break
    parts = [server.current(reply), *server.wait_for(rest, 30, "the rest of the passage")[1:]]
    assert parts[0].edits and not parts[0].buttons  # the answer now shows the start of paragraph 2
    assert parts[0].text.startswith("Crane 1 at the north quay")
    assert re.search(r"paragraph 2 of 3 · match [23]$", parts[-1].text)
    assert set(parts[-1].buttons) == {"More context", "Next match"}
    assert all(utf16_len(p.html) <= MAX_MESSAGE for p in parts)


def test_the_token_is_never_logged_even_at_debug_level(bot: BotProcess, server: FakeTelegram) -> None:
    user = server.user(ALLOWED[0], "Ann")
    question = server.send_text(server.private_chat(user), user, "How many mornings is the harbour closed by fog?")
    server.wait_reply(question)
    log = bot.stderr
    assert "DEBUG" in log and "getUpdates" in log  # debug logging is really on
    assert TOKEN not in log and TOKEN.split(":")[1] not in log


def test_sigterm_stops_polling_and_still_sends_the_pending_reply(bot: BotProcess, server: FakeTelegram) -> None:
    user = server.user(ALLOWED[1], "Ann")
    chat = server.private_chat(user)
    server.inject("sendMessage", Fault(delay=2.0))  # the reply is on its way when SIGTERM comes
    question = server.send_text(chat, user, "How many mornings is the harbour closed by fog?")
    server.wait_for(lambda: [c for c in server.calls_to("sendMessage") if c.params["chat_id"] == chat["id"]], 30)
    stopped_at = time.monotonic()
    assert bot.terminate() == 0, bot.stderr
    replies = server.replies_to(chat["id"], question["message_id"])
    assert len(replies) == 1 and "twenty mornings" in replies[0].text
    assert replies[0].at > stopped_at  # sent after SIGTERM: the pending reply was not dropped
    assert "Traceback" not in bot.stderr
    last_poll = server.calls_to("getUpdates")[-1]  # polling ended by confirming the updates it had handled
    assert last_poll.params["timeout"] == 0 and last_poll.params["offset"] > 0
    assert last_poll.status == 200
