"""The Telegram bot when chats change, fail or lie: issue 23.

Every test runs the real ``citebot telegram`` against the fake Bot API server
(tests/support/fake_telegram.py): a group upgraded to a supergroup while an answer
to it is on its way, chats the bot can no longer reach (kicked, blocked, "chat not
found"), Next match under an answer too long for one message, webhook requests
with a wrong secret or a body too large.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_telegram import TOKEN, BotMessage, FakeTelegram, Fault
from tests.support.telegram_harness import BotProcess, free_port, start_webhook_bot

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

SORRY = "Sorry, something went wrong while answering. Please try again."
QUESTION = "Who denied the claim?"
ANSWER = "Ankara has denied the claim."
ADMIN = 5252
_ids = itertools.count(80_000)
_groups = itertools.count(-4_100_001, -1)


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-chats")
    settings = {"TELEGRAM_ADMINS": str(ADMIN), "TELEGRAM_USER_BURST": "10"}
    process = BotProcess(server, workdir, workdir / "data", **settings).start()
    yield process
    assert process.terminate() == 0, process.stderr
    assert TOKEN not in process.stderr and "Traceback" not in process.stderr


def _person(server: FakeTelegram, name: str = "Ann") -> tuple[dict, dict]:
    user = server.user(next(_ids), name)
    return user, server.private_chat(user)


def _calls_to_chat(server: FakeTelegram, chat_id: int, method: str) -> list:
    return [c for c in server.calls_to(method) if c.params.get("chat_id") == chat_id]


# --- a group upgraded to a supergroup ----------------------------------------------------------------------------


def test_a_group_that_becomes_a_supergroup_keeps_its_choice_and_gets_the_answer_on_its_way(
    bot: BotProcess, server: FakeTelegram
) -> None:
    old = {"id": next(_groups), "type": "group", "title": "Readers"}
    admin = server.user(next(_ids), "Admin")
    server.make_admin(old, admin)
    chosen = server.send_text(old, admin, "/use 1")
    assert server.wait_reply(chosen)[0].text.startswith("This chat asks only: 1 ")
    server.inject("sendMessage", Fault(delay=1.0))  # the answer reaches Telegram after the group was upgraded
    server.send_text(old, admin, f"/ask {QUESTION}")
    new = server.migrate(old, admin, -1_000_000_000_000 + old["id"])
    answers = server.wait_for(
        lambda: [m for m in server.messages_in(new["id"]) if ANSWER in m.text], 30, "the answer in the supergroup"
    )
    assert len(answers) == 1 and answers[0].reply_to is None  # the question it answers stayed in the old group
    server.make_admin(new, admin)
    scope = server.wait_reply(server.send_text(new, admin, "/use"))[0]
    assert scope.text.startswith("This chat asks only: 1 "), scope.text  # the choice came along
    assert SORRY not in [m.text for m in server.sent]
    assert "Traceback" not in bot.stderr and "ChatMigrated" not in bot.stderr


# --- chats the bot cannot reach ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kicked", "chat not found"])
def test_a_group_the_bot_cannot_reach_costs_one_try_and_one_line(
    bot: BotProcess, server: FakeTelegram, how: str
) -> None:
    """Issue 23: three calls and a full ERROR traceback per question; now one try, one line, then the chat's
    waiting questions are dropped unasked until the bot is added to the group again."""
    group = server.group_chat(next(_groups))
    (server.kick if how == "kicked" else server.lose)(group)
    for n in range(4):  # a backlog: the group kicked the bot while these waited
        server.send_text(group, server.user(next(_ids), f"M{n}"), f"/ask {QUESTION}")
    server.wait_for(lambda: f"chat {group['id']} " in bot.stderr, 30, "the one line")
    member = server.user(next(_ids), "Member")
    server.readd(group, member)
    after = server.send_text(group, member, f"/ask {QUESTION}")  # handled after the backlog: same chat, in order
    assert ANSWER in server.wait_reply(after)[0].text
    failed = [c for c in _calls_to_chat(server, group["id"], "sendMessage") if c.status != 200]
    assert len(failed) == 1, [(c.status, c.description) for c in failed]  # no retry, no apology, no second try
    lines = [line for line in bot.stderr.splitlines() if str(group["id"]) in line]
    assert len(lines) == 1, lines
    assert "Traceback" not in bot.stderr


def test_a_user_who_blocked_the_bot_costs_one_try_until_they_unblock_it(bot: BotProcess, server: FakeTelegram) -> None:
    user, chat = _person(server, "Blocker")
    server.block(user)
    for _ in range(3):
        server.send_text(chat, user, QUESTION)
    server.wait_for(lambda: f"chat {chat['id']} " in bot.stderr, 30, "the one line")
    server.unblock(user)
    start = server.send_text(chat, user, "/start")  # what a client sends when the user unblocks the bot
    assert server.wait_reply(start)
    later = server.send_text(chat, user, QUESTION)
    assert ANSWER in server.wait_reply(later)[0].text
    failed = [c for c in _calls_to_chat(server, chat["id"], "sendMessage") if c.status != 200]
    assert len(failed) == 1 and failed[0].status == 403
    assert len([line for line in bot.stderr.splitlines() if str(chat["id"]) in line]) == 1
    assert "Traceback" not in bot.stderr


# --- Next match under an answer of several messages ----------------------------------------------------------------

#: One paragraph of over 8,192 characters, so its answer takes three messages, then a short one.
CANAL = (
    "# Canal dredging report\n\n"
    + " ".join(
        f"In week {n} the dredgers removed {n * 40 + 7} tonnes of silt from lock {n} of the Newry canal."
        for n in range(1, 130)
    )
    + "\n\nThe Newry canal reopened to boats in May, after the dredgers had removed the silt from every lock.\n"
)


def _add(server: FakeTelegram, name: str, content: str) -> BotMessage:
    """The admin sends a file; return the status message once it says how the addition ended."""
    admin = server.user(ADMIN, "Editor")
    status = server.wait_reply(server.send_document(server.private_chat(admin), admin, name, content.encode()))[0]
    done = server.wait_for(lambda: server.current(status).text.startswith(("Added", "Not")) and status, 120)
    return server.current(done)


def test_next_match_under_a_three_part_answer_replaces_every_part(bot: BotProcess, server: FakeTelegram) -> None:
    """Issue 23: Next match under the last part left the earlier parts of the old passage above the new one."""
    added = _add(server, "canal.txt", CANAL)
    assert added.text.startswith("Added "), added.text
    user, chat = _person(server, "Reader")
    question = server.send_text(chat, user, "How many tonnes of silt did the dredgers remove from lock 3?")
    parts = server.wait_reply(question, count=3, timeout=60)
    assert len(parts) == 3 and list(parts[-1].buttons) == ["More context", "Next match"], [p.text for p in parts]
    assert not parts[0].buttons and "lock 3 of the Newry canal" in parts[0].text
    server.press(parts[-1], "Next match")

    def shown() -> list[BotMessage]:
        now = [m for m in server.messages_in(chat["id"], deleted=False) if m.reply_to == question["message_id"]]
        return now if not any("of the Newry canal." in m.text for m in now) else []

    now = server.wait_for(shown, 30, "the old passage to be gone")
    assert now[-1].buttons and "Next match" in now[-1].buttons  # the buttons under the new passage's last part
    assert not any(m.buttons for m in now[:-1])
    assert SORRY not in [m.text for m in server.sent] and "Traceback" not in bot.stderr


# --- webhook requests that are refused ----------------------------------------------------------------------------

HOOK_SECRET = "hook-Secret_for-tests"
#: The size of each body of issue 23's report.
BIG = 10_500_000


def _head(port: int, size: int, secret: str) -> bytes:
    """Return the headers of a webhook POST whose body is ``size`` bytes, with ``secret``."""
    lines = [
        "POST /hook HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {size}",
        f"X-Telegram-Bot-Api-Secret-Token: {secret}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer_before_the_body(port: int, size: int, secret: str) -> str:
    """Send the headers of a POST of ``size`` bytes and its first 64 KB only; return the status line the server
    answers without waiting for the rest (a server that reads the whole body first never answers: timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_head(port, size, secret) + b"{" * 65_536)
        return sock.recv(4096).split(b"\r\n")[0].decode()


def _post_whole(port: int, size: int, secret: str) -> None:
    """Send a whole POST of ``size`` bytes as fast as the server takes it (it may hang up on it halfway)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(_head(port, size, secret) + b"{" * size)
            sock.recv(4096)
        except OSError:  # refused halfway: the server closed the connection
            pass


def _rss_kb(pid: int) -> int:
    """Return the resident memory of process ``pid`` in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_webhook_bodies_are_refused_before_they_are_read(tmp_path: Path) -> None:
    """Issue 23: five 10.5 MB bodies with a wrong secret were each read whole, then refused; RSS 226 -> 335 MB."""
    port = free_port()
    with FakeTelegram() as server:
        process = start_webhook_bot(server, tmp_path, port, TELEGRAM_WEBHOOK_SECRET=HOOK_SECRET)
        try:
            assert process.process is not None
            assert _answer_before_the_body(port, BIG, "wrong-secret").startswith("HTTP/1.1 403 ")
            assert _answer_before_the_body(port, 2_000_000, HOOK_SECRET).startswith("HTTP/1.1 413 ")  # over the cap
            before = _rss_kb(process.process.pid)
            for _ in range(5):
                _post_whole(port, BIG, "wrong-secret")
            grown = _rss_kb(process.process.pid) - before
            assert grown < 8_000, f"RSS grew by {grown} kB for 5 refused bodies of {BIG // 1000} kB"
            user = server.user(91, "Ann")
            chat = server.private_chat(user)
            question = server.send_text(chat, user, QUESTION)  # a real update still gets in
            assert ANSWER in server.wait_reply(question)[0].text
            poll = {"message_id": 9_999, "date": 0, "chat": chat, "from": user, "poll": {"id": "p1"}}
            bad = server.send_raw({"message": poll})  # one python-telegram-bot cannot parse: skipped, as in polling
            assert server.wait_for(lambda: [s for u, s in server.deliveries if u == bad], 30) == [200]
            assert f"skipped update {bad}: it cannot be read" in process.stderr
        finally:
            assert process.terminate() == 0, process.stderr
    assert "Traceback" not in process.stderr and HOOK_SECRET not in process.stderr
