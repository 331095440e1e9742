"""The Telegram bot against hostile users, a flaky network and odd input: one specification, issue 7.

Every test runs the real ``citebot telegram`` against the fake Bot API server
(tests/support/fake_telegram.py) and makes it misbehave: updates the bot cannot parse,
flood control, outages, a revoked token, floods from one chat or user, forged
buttons, malformed entities, a silent API during shutdown, webhook retries.
Waits that are a minute or more in production are shortened through settings
(``TELEGRAM_DELIVERY_RETRY_SECONDS`` and the like), so each scenario takes
seconds.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.telegram.buttons import Button, decode_button
from index.reading.article import Article
from tests.support.fake_telegram import TOKEN, BotMessage, FakeTelegram, Fault
from tests.support.paths import CITEBOT
from tests.support.telegram_harness import (
    BotProcess,
    ask_and_time,
    bot_environment,
    free_port,
    start_webhook_bot,
)

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

SORRY = "Sorry, something went wrong while answering. Please try again."
STALE = "This button no longer works. Please ask the question again."
TOO_FAST = "You are sending questions faster than I can answer, so I am skipping some. Please wait a minute."
QUESTION = "Who denied the claim?"
ANSWER = "Ankara has denied the claim."
#: Settings of the module's bot: retries, floods and queues shortened so that each scenario takes seconds.
SHORT = {
    "TELEGRAM_ADMINS": "5151",
    "TELEGRAM_DELIVERY_RETRY_SECONDS": "8",
    "TELEGRAM_USER_BURST": "3",
    "TELEGRAM_USER_PER_MINUTE": "60",
    "TELEGRAM_CHAT_QUEUE": "10",
}
_ids = itertools.count(60_000)
#: The admin of the module's bot (``TELEGRAM_ADMINS``).
ADMIN = 5151
QUEUE_FULL = (
    "Too many messages in this chat are waiting for an answer, so I am skipping new ones until I catch up. "
    "Please ask again in a minute."
)
#: A sentence only a file on the bot's own disk holds: it must never become quotable.
SECRET = "The vault code of the newsroom is 7731 and only the editor knows it."


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-hostile")
    process = BotProcess(server, workdir, workdir / "data", **SHORT).start()
    yield process
    server.end_outages()
    started = time.monotonic()
    assert process.terminate() == 0, process.stderr
    assert time.monotonic() - started < 15  # even with a group's backlog queued
    assert TOKEN not in process.stderr and "Traceback" not in process.stderr


def _person(server: FakeTelegram, name: str = "Ann") -> tuple[dict, dict]:
    user = server.user(next(_ids), name)
    return user, server.private_chat(user)


def _ask(server: FakeTelegram, question: str = QUESTION, timeout: float = 30) -> tuple[dict, BotMessage]:
    user, chat = _person(server)
    message = server.send_text(chat, user, question)
    return message, server.wait_reply(message, timeout=timeout)[0]


def _idle_latency(server: FakeTelegram) -> float:
    users = [server.user(next(_ids), f"Idle{n}") for n in range(3)]
    return max(ask_and_time(server, users, QUESTION, timeout=30))


# --- allowlist ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [",", " , ", "", ",,;"])
def test_an_allowlist_that_names_nobody_is_a_one_line_start_up_error(run_citebot, value: str) -> None:
    """A set-but-empty list (or a template whose variable is unset) must not open the bot to everyone."""
    env = {"TELEGRAM_ALLOWED_USERS": value, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": "http://127.0.0.1:9/bot"}
    result = run_citebot("telegram", env=env, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"citebot: error: TELEGRAM_ALLOWED_USERS={value!r} is not valid: expected one or more")
    assert "do not set it at all" in lines[0] and TOKEN not in result.stderr


def test_start_up_says_the_bot_is_open_to_everyone(bot: BotProcess) -> None:
    assert "citebot: open to everyone (TELEGRAM_ALLOWED_USERS is not set)" in bot.stderr


# --- odd input ---------------------------------------------------------------------------------------


def test_an_update_that_cannot_be_parsed_is_skipped_once_and_the_others_answered(
    bot: BotProcess, server: FakeTelegram
) -> None:
    user, chat = _person(server, "Poller")
    polls_before = len(server.calls_to("getUpdates"))
    message = {"message_id": 9_999, "date": int(time.time()), "chat": chat, "from": user, "poll": {"id": "p1"}}
    bad = server.send_raw({"message": message})  # a poll in a shape python-telegram-bot cannot read
    started = time.monotonic()
    _, other = _ask(server, timeout=15)  # another chat is still answered
    assert ANSWER in other.text
    same = server.send_text(chat, user, QUESTION)  # and so is the chat the bad update came from
    assert ANSWER in server.wait_reply(same, timeout=15)[0].text
    polls = len(server.calls_to("getUpdates")) - polls_before
    assert polls <= 5 + 2 * (time.monotonic() - started)  # no tight loop fetching the same update again
    log = bot.stderr
    assert log.count(f"skipped update {bad}: it cannot be read (TypeError") == 1
    assert "CRITICAL" not in log


def test_forged_next_match_ranks_get_the_stale_answer(bot: BotProcess, server: FakeTelegram, seed: Article) -> None:
    _, reply = _ask(server)
    real = decode_button(reply.buttons["More context"])
    assert real is not None and real.fingerprint == seed.fingerprint[:8]
    for rank in (20, 21, 999_999_999, 0):
        data = Button("next", real.article, real.fingerprint, rank=rank).encode()
        presser = server.user(next(_ids), "Presser")  # one press each: none is over the per-user limit
        query = server.press_data(reply.chat_id, reply.message_id, data, presser)
        answered = server.wait_for(lambda q=query: server.callback_answers.get(q), 30, f"an answer to rank {rank}")
        assert answered["text"] == STALE, rank
    assert not server.current(reply).edits
    assert "must be from 1 to" not in bot.stderr


def test_forged_library_buttons_are_checked_on_every_press(bot: BotProcess, server: FakeTelegram) -> None:
    """Scope buttons carry only an id: an unknown one is refused, and in a group only administrators may press."""
    _, reply = _ask(server)
    server.press_data(reply.chat_id, reply.message_id, "u:424242")
    said = server.wait_for(lambda: server.replies_to(reply.chat_id, reply.message_id), 30, "the refusal")[0]
    assert said.text.startswith("No article with id 424242 in the library (ids: 1).")
    group = server.group_chat(-100_500_009)
    member = server.user(next(_ids), "Member")
    asked = server.send_text(group, member, f"/ask {QUESTION}")
    answer = server.wait_reply(asked)[0]
    for data in ("u:1", "u:0"):
        query = server.press_data(group["id"], answer.message_id, data, member)
        toast = server.wait_for(lambda q=query: server.callback_answers.get(q), 30, "the toast")["text"]
        assert toast == "Only this group's administrators can change which articles it asks."
    assert server.calls_to("getChatMember")  # asked of Telegram at each press
    assert not server.replies_to(group["id"], answer.message_id)
    other = server.user(next(_ids), "Other")  # the member has used up the module's short per-user burst
    scope = server.wait_reply(server.send_text(group, other, "/use"))[0]
    assert scope.text == "This chat asks the whole library (1 article)."


def test_a_mention_entity_inside_a_surrogate_pair_is_no_mention(bot: BotProcess, server: FakeTelegram) -> None:
    group = server.group_chat(-100_500_001)
    ann = server.user(next(_ids), "Ann")
    text = "😀@CiteTestBot who denied the claim?"
    broken = [{"type": "mention", "offset": 1, "length": 12}]  # starts inside the emoji's two UTF-16 units
    odd = server.send_text(group, ann, text, entities=broken)
    after = server.send_text(group, ann, f"/ask {QUESTION}")  # handled after the odd one: same chat, in order
    assert ANSWER in server.wait_reply(after)[0].text
    assert not server.replies_to(group["id"], odd["message_id"])  # no mention: ignored, no apology
    assert "UnicodeDecodeError" not in bot.stderr


# --- a flaky network ---------------------------------------------------------------------------------


def test_flood_control_is_waited_out_as_long_as_telegram_asks(bot: BotProcess, server: FakeTelegram) -> None:
    server.outage(8, Fault(status=429, retry_after=1), "sendMessage")
    started = time.monotonic()
    asked = []
    for _ in range(5):
        user, chat = _person(server)
        asked.append(server.send_text(chat, user, QUESTION))
    for message in asked:
        replies = server.wait_reply(message, timeout=40)
        assert [ANSWER in r.text for r in replies] == [True], [r.text for r in replies]
        assert replies[0].at - started >= 7.5  # not before Telegram allowed it
    assert SORRY not in [m.text for m in server.sent]


def test_an_answer_survives_a_short_outage(bot: BotProcess, server: FakeTelegram) -> None:
    """Every request dropped for 5 s, starting when the answer is sent: it is retried until it gets through."""
    server.inject("sendMessage", Fault(drop=True, outage=5))
    user, chat = _person(server)
    question = server.send_text(chat, user, QUESTION)
    replies = server.wait_reply(question, timeout=40)
    assert len(replies) == 1 and ANSWER in replies[0].text
    attempts = [c for c in server.calls_to("sendMessage") if c.params.get("chat_id") == chat["id"]]
    assert attempts[0].status == 0 and attempts[-1].status == 200
    assert attempts[-1].at - attempts[0].at >= 5


def test_an_outage_longer_than_the_retry_budget_is_a_logged_give_up(bot: BotProcess, server: FakeTelegram) -> None:
    server.inject("sendMessage", Fault(drop=True, outage=11))  # longer than TELEGRAM_DELIVERY_RETRY_SECONDS=8
    user, chat = _person(server)
    question = server.send_text(chat, user, QUESTION)
    server.wait_for(lambda: f"gave up on sendMessage to chat {chat['id']}" in bot.stderr, 30, "the give-up line")
    again = server.send_text(chat, user, QUESTION)  # after the outage the bot answers again
    assert ANSWER in server.wait_reply(again, timeout=40)[0].text
    assert not server.replies_to(chat["id"], question["message_id"])  # given up: no reply, no apology either


def test_a_reply_telegram_carried_out_but_whose_answer_was_lost_is_sent_again(
    bot: BotProcess, server: FakeTelegram
) -> None:
    """Delivery is at least once (README): when the reply to sendMessage is lost, the bot cannot tell."""
    server.inject("sendMessage", Fault(lose_reply=True))
    user, chat = _person(server)
    question = server.send_text(chat, user, QUESTION)
    replies = server.wait_reply(question, count=2)
    assert replies[0].text == replies[1].text and ANSWER in replies[0].text


def test_a_slow_typing_indicator_does_not_delay_the_answer(bot: BotProcess, server: FakeTelegram) -> None:
    server.inject("sendChatAction", Fault(delay=10))
    user, chat = _person(server)
    asked_at = time.monotonic()
    question = server.send_text(chat, user, QUESTION)
    reply = server.wait_reply(question, timeout=30)[0]
    assert reply.at - asked_at < 3


def test_a_button_whose_acknowledgement_fails_still_does_its_work(
    bot: BotProcess, server: FakeTelegram, seed: Article
) -> None:
    _, reply = _ask(server, "Which two roads meet at Saraqeb?")
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    server.inject("answerCallbackQuery", Fault(status=400, description=too_old))
    server.press(reply, "More context")
    context = server.wait_for(lambda: server.replies_to(reply.chat_id, reply.message_id), 30, "the context")
    assert seed.paragraph(8) in context[0].text and "paragraph 9 of 20" in context[0].text


# --- floods ------------------------------------------------------------------------------------------


def test_one_user_flooding_does_not_starve_the_others_and_gets_one_notice(
    bot: BotProcess, server: FakeTelegram
) -> None:
    idle = _idle_latency(server)
    flooder, chat = _person(server, "Flood")
    for _ in range(700):
        server.send_text(chat, flooder, QUESTION)
    others = [server.user(next(_ids), f"Other{n}") for n in range(5)]
    latencies = ask_and_time(server, others, QUESTION, timeout=60)
    assert max(latencies) < idle + 3, (idle, latencies)
    server.wait_for(lambda: [m for m in server.messages_in(chat["id"]) if m.text == TOO_FAST], 30, "the notice")
    time.sleep(1.0)  # what else the flood would bring comes within a second
    texts = [m.text for m in server.messages_in(chat["id"])]
    assert texts.count(TOO_FAST) == 1
    assert 3 <= sum(ANSWER in t for t in texts) <= 8  # the burst, and what the per-minute rate allows since
    assert "sends too fast" in bot.stderr


def test_a_group_flood_is_bounded_and_other_chats_are_answered_promptly(bot: BotProcess, server: FakeTelegram) -> None:
    idle = _idle_latency(server)
    group = server.group_chat(-100_500_002)
    asked = [server.send_text(group, server.user(next(_ids), f"M{n}"), f"/ask {QUESTION}") for n in range(560)]
    others = [server.user(next(_ids), f"Other{n}") for n in range(5)]
    latencies = ask_and_time(server, others, QUESTION, timeout=60)
    assert max(latencies) < idle + 3, (idle, latencies)
    first = server.wait_reply(asked[0], timeout=30)[0]
    assert ANSWER in first.text
    server.wait_for(lambda: f"chat {group['id']} has 10 updates waiting" in bot.stderr, 30, "the dropping line")
    assert bot.stderr.count(f"chat {group['id']} has 10 updates waiting") <= 5  # once per flood, not per update


# --- a webhook delivered twice -----------------------------------------------------------------------


def test_a_webhook_update_delivered_twice_is_answered_once(tmp_path: Path) -> None:
    port = free_port()
    allowed = (71, 72)
    with FakeTelegram() as server:
        process = start_webhook_bot(server, tmp_path, port, TELEGRAM_ALLOWED_USERS=",".join(map(str, allowed)))
        try:
            user = server.user(allowed[0], "Ann")
            chat = server.private_chat(user)
            question = server.send_text(chat, user, QUESTION)
            server.wait_reply(question)
            update_id = server.wait_for(lambda: server.deliveries, 10, "the delivery")[-1][0]
            server.redeliver(update_id)
            server.wait_for(lambda: len([d for d in server.deliveries if d[0] == update_id]) == 2, 30)
            later = server.send_text(chat, user, "Which two roads meet at Saraqeb?")
            server.wait_reply(later)  # handled after the second delivery: same chat, in order
            assert len(server.replies_to(chat["id"], question["message_id"])) == 1
            assert "citebot: only for 2 allowed users (TELEGRAM_ALLOWED_USERS)" in process.stderr
        finally:
            assert process.terminate() == 0, process.stderr


# --- a revoked token ---------------------------------------------------------------------------------


def test_a_revoked_token_that_comes_back_recovers_and_one_that_stays_revoked_exits(tmp_path: Path) -> None:
    with FakeTelegram() as server:
        process = BotProcess(server, tmp_path, tmp_path / "data", TELEGRAM_UNAUTHORIZED_EXIT_SECONDS="8").start()
        try:
            server.outage(3, Fault(status=401))
            user, chat = _person(server)
            during = server.send_text(chat, user, QUESTION)  # asked while Telegram refuses the token
            assert ANSWER in server.wait_reply(during, timeout=30)[0].text
            assert process.process is not None and process.process.poll() is None

            server.outage(120, Fault(status=401))
            started = time.monotonic()
            code = process.process.wait(40)
        finally:
            if process.process is not None and process.process.poll() is None:
                process.terminate()
    assert code != 0 and time.monotonic() - started < 30
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("citebot: error: Telegram has refused TELEGRAM_BOT_TOKEN (401 Unauthorized) for ")
    assert "Traceback" not in process.stderr and TOKEN not in process.stderr


# --- bounded shutdown --------------------------------------------------------------------------------


def test_sigterm_during_a_long_flood_wait_with_a_backlog_stops_within_seconds(tmp_path: Path) -> None:
    with FakeTelegram() as server:
        process = BotProcess(server, tmp_path, tmp_path / "data", TELEGRAM_SHUTDOWN_SECONDS="5").start()
        server.inject("sendMessage", Fault(status=429, retry_after=120))
        group = server.group_chat(-100_500_003)
        # A backlog within the chat's queue (TELEGRAM_CHAT_QUEUE, 20): past it, the chat's overflow notice would be
        # the first sendMessage and take the 429 instead of the answer in progress.
        for n in range(15):
            server.send_text(group, server.user(next(_ids), f"M{n}"), f"/ask {QUESTION}")
        server.wait_for(lambda: [c for c in server.calls_to("sendMessage") if c.status == 429], 30, "the 429")
        started = time.monotonic()
        code = process.terminate(timeout=30)
        took = time.monotonic() - started
    assert code == 0, process.stderr
    # TELEGRAM_SHUTDOWN_SECONDS=5 and the interpreter's exit, not the 120 s Telegram asked to wait (the slack
    # is for a loaded machine: the process must also free the model)
    assert took < 20, took
    log = process.stderr
    assert "shutting down: dropped" in log and "queued updates from 1 chat\n" in log
    assert "shutting down: cancelled 1 updates still in progress" in log
    assert "Traceback" not in log


def test_sigterm_with_answers_stuck_on_a_silent_api_stops_within_seconds(tmp_path: Path) -> None:
    with FakeTelegram() as server:
        process = BotProcess(server, tmp_path, tmp_path / "data").start()
        server.inject("sendMessage", Fault(hang=True, outage=120))  # from the first answer on, nothing answers
        for _ in range(5):
            user, chat = _person(server)
            server.send_text(chat, user, QUESTION)
        server.wait_for(lambda: server.calls_to("sendMessage"), 30, "the first answer")
        time.sleep(1.0)  # the other answers are being sent too
        started = time.monotonic()
        code = process.terminate(timeout=30, sig=signal.SIGTERM)
        took = time.monotonic() - started
        server.end_outages()
    assert code == 0, process.stderr
    assert took < 14, took
    assert "shutting down: cancelled" in process.stderr and "Traceback" not in process.stderr


# --- issue 14: files from the Bot API -------------------------------------------------------------------------


def _finished(server: FakeTelegram, status: BotMessage, timeout: float = 120) -> BotMessage:
    """Wait until the status message of an addition says how it ended."""

    def done() -> BotMessage | None:
        now = server.current(status)
        return now if now.text.startswith(("Added", "Not added", "Already", "Replaced")) else None

    return server.wait_for(done, timeout, "the addition to finish")


def _upload(server: FakeTelegram, admin: int, name: str, content: bytes, file_path: str | None = None) -> BotMessage:
    """The admin sends a file; return the status message once it says how the addition ended."""
    user = server.user(admin, "Editor")
    sent = server.send_document(server.private_chat(user), user, name, content, file_path=file_path)
    return _finished(server, server.wait_reply(sent)[0])


def test_a_path_on_the_bot_api_disk_is_never_read_without_local_mode(
    bot: BotProcess, server: FakeTelegram, tmp_path: Path
) -> None:
    """getFile naming an absolute path, or one climbing out with "..", must not make the bot read its own disk."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    (bot.workdir / "documents").mkdir(exist_ok=True)
    (bot.workdir / "secret.txt").write_text(f"{SECRET}\n")  # where "documents/../secret.txt" leads from the cwd
    said = []
    for path in (str(secret), "documents/../secret.txt"):
        done = _upload(server, ADMIN, "news.txt", b"Harmless text the admin sent.\n", file_path=path)
        said.append(done.text)
    absolute, climbing = said
    assert absolute.startswith("Not added: could not download news.txt: ") and "TELEGRAM_LOCAL_FILES_DIR" in absolute
    assert (
        climbing
        == "Not added: could not download news.txt: The Bot API gave a file path that leaves its file directory."
    )
    _, reply = _ask(server, "What is the vault code of the newsroom?")
    assert "7731" not in reply.text
    user, chat = _person(server)
    assert (
        server.wait_reply(server.send_text(chat, user, "/use"))[0].text
        == "This chat asks the whole library (1 article)."
    )


def test_a_failed_download_is_one_line_not_a_json_traceback(bot: BotProcess, server: FakeTelegram) -> None:
    done = _upload(server, ADMIN, "gone.txt", b"Some text.\n", file_path="documents/not_there.txt")
    assert done.text == "Not added: could not download gone.txt: The Bot API answered HTTP 404."
    assert "Can not load invalid JSON" not in bot.stderr and "Traceback" not in bot.stderr


def test_a_chat_over_its_queue_is_told_once(bot: BotProcess, server: FakeTelegram) -> None:
    group = server.group_chat(-100_500_014)
    asked = [server.send_text(group, server.user(next(_ids), f"Q{n}"), f"/ask {QUESTION}") for n in range(40)]
    server.wait_reply(asked[0], timeout=60)
    notice = server.wait_for(
        lambda: [m for m in server.messages_in(group["id"]) if m.text == QUEUE_FULL], 30, "the queue notice"
    )
    server.wait_for(lambda: f"chat {group['id']} caught up" in bot.stderr, 60, "the chat to catch up")
    assert len([m for m in server.messages_in(group["id"]) if m.text == QUEUE_FULL]) == 1
    assert notice[0].reply_to is not None  # a reply to the first message that was skipped


# --- issue 14: an admin's bot with a local Bot API server -----------------------------------------------------
# The tests below run in order on one bot: later ones ask about the articles the earlier ones added.


@pytest.fixture(scope="module")
def admin_server() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture(scope="module")
def admin_bot(admin_server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-admin")
    (workdir / "botapi" / "documents").mkdir(parents=True)
    extra = {
        "TELEGRAM_ADMINS": str(ADMIN),
        "TELEGRAM_USER_BURST": "30",
        "TELEGRAM_LOCAL_FILES_DIR": str(workdir / "botapi"),
    }
    process = BotProcess(admin_server, workdir, workdir / "data", **extra).start()
    yield process
    assert process.terminate() == 0, process.stderr
    assert TOKEN not in process.stderr and "Traceback" not in process.stderr


LIGHTHOUSE = (
    "# Lighthouse keeper retires\n\nMargo Vance kept the Skerry lighthouse for forty-one years. "
    "She retired on Friday and handed the keys to the harbour trust.\n"
)
BAKERY = (
    "# Bakery reopens on the quay\n\nTomas Reyes reopened the quay bakery after the flood. "
    "The ovens were rebuilt with a grant from the town council.\n"
)


def test_two_different_uploads_with_the_same_name_are_two_articles(
    admin_bot: BotProcess, admin_server: FakeTelegram
) -> None:
    first = _upload(admin_server, ADMIN, "news.txt", LIGHTHOUSE.encode())
    second = _upload(admin_server, ADMIN, "news.txt", BAKERY.encode())
    assert first.text.startswith("Added ") and second.text.startswith("Added "), (first.text, second.text)
    assert first.text.split(".")[0] != second.text.split(".")[0]  # two ids
    again = _upload(admin_server, ADMIN, "news.txt", BAKERY.encode())
    assert again.text.startswith("Already in the library:"), again.text
    _, reply = _ask(admin_server, "Who kept the Skerry lighthouse?")
    assert "Margo Vance" in reply.text  # the first article is still there


def test_a_local_bot_api_file_is_read_only_from_its_directory(
    admin_bot: BotProcess, admin_server: FakeTelegram, tmp_path: Path
) -> None:
    local = Path(admin_bot.workdir) / "botapi" / "documents" / "file_9.txt"
    local.write_text("# Ferry strike ends\n\nThe ferry crews of Larne ended their strike on Monday after a pay deal.\n")
    done = _upload(admin_server, ADMIN, "ferry.txt", b"ignored: read from the local server's directory", str(local))
    assert done.text.startswith("Added "), done.text
    outside = tmp_path / "secret.txt"
    outside.write_text(f"{SECRET}\n")
    link = local.parent / "link.txt"
    link.symlink_to(outside)  # inside the directory by name, outside it in fact
    for path in (outside, link, local.parent / ".." / ".." / ".." / outside.name):
        refused = _upload(admin_server, ADMIN, "news.txt", b"Harmless.\n", str(path))
        assert refused.text.startswith("Not added: could not download news.txt: "), (path, refused.text)
    _, reply = _ask(admin_server, "What is the vault code of the newsroom?")
    assert "7731" not in reply.text


def test_a_failure_while_adding_still_ends_the_status_message(
    admin_bot: BotProcess, admin_server: FakeTelegram
) -> None:
    """The edit to "Indexing…" fails: the addition goes on and the status message ends with its outcome."""
    cannot = Fault(status=400, description="Bad Request: message can't be edited")
    admin_server.inject("editMessageText", Fault(), cannot)  # "Reading…" goes through, "Indexing…" does not
    text = "# Tram line opens\n\nThe new tram line to Ardglass opened with eleven stops on Sunday.\n"
    done = _upload(admin_server, ADMIN, "tram.txt", text.encode())
    assert done.text.startswith("Added "), done.text
    assert "Sorry, something went wrong" not in [m.text for m in admin_server.sent]


def test_a_big_addition_puts_no_progress_bar_in_the_log(admin_bot: BotProcess, admin_server: FakeTelegram) -> None:
    paragraphs = [
        f"Section {n}. The bus timetable for route {n} lists {n * 3} journeys a week between the villages. "
        f"The operator said fares on route {n} would rise by {n % 7} per cent in the spring."
        for n in range(1, 320)
    ]
    content = ("# Bus timetables\n\n" + "\n\n".join(paragraphs)).encode()
    done = _upload(admin_server, ADMIN, "buses.md", content)
    assert done.text.startswith("Added ") and "319 paragraphs" in done.text, done.text
    assert "Batches" not in admin_bot.stderr and "it/s]" not in admin_bot.stderr


def test_a_chat_whose_chosen_articles_were_all_removed_is_told(
    admin_bot: BotProcess, admin_server: FakeTelegram
) -> None:
    text = "# Pier repaired\n\nThe Kilkeel pier was repaired by divers from the coastguard in March.\n"
    done = _upload(admin_server, ADMIN, "pier.txt", text.encode())
    article = int(re.match(r"Added (\d+)\. ", done.text).group(1))  # type: ignore[union-attr]
    user, chat = _person(admin_server, "Reader")
    chosen = admin_server.send_text(chat, user, f"/use {article}")
    assert "Pier repaired" in admin_server.wait_reply(chosen)[0].text
    editor = admin_server.user(ADMIN, "Editor")
    removed = admin_server.send_text(admin_server.private_chat(editor), editor, f"/remove {article}")
    assert admin_server.wait_reply(removed)[0].text.startswith(f"Removed {article}.")
    asked = admin_server.send_text(chat, user, "Who kept the Skerry lighthouse?")
    replies = admin_server.wait_reply(asked, count=2)
    assert replies[0].text.startswith(f"The articles this chat asked ({article}) are no longer in the library")
    assert "Margo Vance" in replies[1].text
    later = admin_server.send_text(chat, user, "Who kept the Skerry lighthouse?")
    admin_server.wait_reply(later)
    time.sleep(0.5)
    assert len(admin_server.replies_to(chat["id"], later["message_id"])) == 1  # told once


# --- issue 14: a damaged chat state ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["junk", "directory"])
def test_an_unusable_chat_state_at_start_up_is_one_line_and_exit_2(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if damage == "junk":
        (data / "bot.sqlite3").write_bytes(b"this is not a database\x00\xff" * 200)
    else:
        (data / "bot.sqlite3").mkdir()
    with FakeTelegram() as server:
        env = bot_environment(server, data)
        result = subprocess.run(
            [CITEBOT, "telegram"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citebot: error: "), result.stderr
    assert "bot.sqlite3" in lines[0] and "move it away" in lines[0]


def test_a_chat_state_damaged_while_running_leaves_answering_alone(tmp_path: Path) -> None:
    with FakeTelegram() as server:
        process = BotProcess(server, tmp_path, tmp_path / "data").start()
        try:
            user, chat = _person(server, "Damaged")
            first = server.wait_reply(server.send_text(chat, user, QUESTION))[0]
            assert ANSWER in first.text
            state = tmp_path / "data" / "bot.sqlite3"
            state.write_bytes(os.urandom(64 * 1024))  # junk over the whole file
            for name in ("bot.sqlite3-wal", "bot.sqlite3-shm"):
                path = tmp_path / "data" / name
                if path.exists():
                    path.write_bytes(os.urandom(path.stat().st_size or 1024))
            asked = server.send_text(chat, user, QUESTION)
            assert ANSWER in server.wait_reply(asked)[0].text
            use = server.send_text(chat, user, "/use 1")
            said = server.wait_reply(use)[0].text
            assert said.startswith("Sorry, I cannot remember which articles this chat asks right now"), said
            reply = server.send_text(chat, user, "Who denied it?", reply_to=first.message_id)
            assert server.wait_reply(reply)[0].text != SORRY
            assert SORRY not in [m.text for m in server.messages_in(chat["id"])]
            log = process.stderr
            assert log.count("the chat state") == 1 and "cannot be used" in log, log
        finally:
            code = process.terminate()
    assert code == 0, process.stderr
    assert "Traceback" not in process.stderr


# --- issue 14: SIGTERM on an idle bot -------------------------------------------------------------------------


def test_sigterm_on_an_idle_bot_exits_within_seconds(tmp_path: Path) -> None:
    """An idle bot stops at once: polling, the application and the exit of the interpreter, which had to run
    the garbage collector over every object of the model and its libraries (7-36 s on a busy machine)."""
    with FakeTelegram() as server:
        process = BotProcess(server, tmp_path, tmp_path / "data").start()
        _, reply = _ask(server)
        assert ANSWER in reply.text
        time.sleep(1.0)  # idle: polling, nothing in progress
        started = time.monotonic()
        code = process.terminate(timeout=60)
        took = time.monotonic() - started
    assert code == 0, process.stderr
    assert took < 5, took  # about 1 s on an idle machine; the slack is for a loaded one
    assert "Traceback" not in process.stderr
