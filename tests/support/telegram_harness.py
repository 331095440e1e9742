"""Running the real ``citebot telegram`` against :class:`FakeTelegram`, and the load scenario."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.fake_telegram import TOKEN, BotMessage, FakeTelegram
from tests.support.paths import CITEBOT

#: How long the bot may take to load the model and the index and start polling.
START_TIMEOUT = 120.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 30.0) -> None:
    """Return once something listens on ``port`` of 127.0.0.1; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on port {port}") from None
            time.sleep(0.1)  # polling a port: there is no event to wait on


def bot_environment(server: FakeTelegram, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for ``citebot telegram``: this process's, less citebot's and Telegram's settings and proxies."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_")) and k.lower() not in proxies
    }
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=server.base_url,
        CITEBOT_DATA_DIR=str(data_dir),
        NO_PROXY="127.0.0.1,localhost",
        NO_COLOR="1",
    )
    env.update(extra)
    return env


class BotProcess:
    """``citebot telegram`` as a subprocess talking to ``server``; its output goes to files in ``workdir``."""

    def __init__(self, server: FakeTelegram, workdir: Path, data_dir: Path, **env: str) -> None:
        self.server = server
        self.workdir = workdir
        self.env = bot_environment(server, data_dir, **env)
        self.stderr_path = workdir / "bot-stderr.txt"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: str = "getUpdates") -> BotProcess:
        """Start the bot and wait until it calls ``ready`` (it polls, or sets its webhook)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [CITEBOT, "telegram"], env=self.env, cwd=self.workdir, stdout=err, stderr=subprocess.STDOUT
            )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"citebot telegram exited with {process.returncode}:\n{self.stderr}")
            return bool(self.server.calls_to(ready))

        self.server.wait_for(up, START_TIMEOUT, f"the bot to call {ready}")
        return self

    @property
    def stderr(self) -> str:
        """Everything the bot wrote so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def terminate(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
        """Send SIGTERM (or ``sig``, say SIGINT for Ctrl-C) and wait for the exit; return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"citebot telegram did not stop within {timeout} s of signal {sig}") from None


@dataclass
class LoadResult:
    """What the load scenario measured."""

    questions: int
    seconds: float
    slowest: float
    problems: list[str]

    @property
    def per_second(self) -> float:
        """Answers per second, from the first question to the last answer."""
        return self.questions / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One line of figures."""
        return (
            f"{self.questions} questions answered in {self.seconds:.2f} s: {self.per_second:.1f} answers/s, "
            f"slowest reply {self.slowest:.2f} s"
        )


def start_webhook_bot(server: FakeTelegram, workdir: Path, port: int, path: str = "/hook", **env: str) -> BotProcess:
    """Start ``citebot telegram`` in webhook mode on 127.0.0.1:``port`` at ``path`` (library in ``workdir/data``) and
    wait until it has set its webhook and listens."""
    process = BotProcess(
        server,
        workdir,
        workdir / "data",
        TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}{path}",
        TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
        TELEGRAM_WEBHOOK_PORT=str(port),
        **env,
    ).start(ready="setWebhook")
    wait_listening(port)
    return process


def run_load(
    server: FakeTelegram, questions: list[str], chats: int = 50, per_chat: int = 4, first_user: int = 500_000
) -> LoadResult:
    """``chats`` users each send ``per_chat`` questions at once; check each is answered exactly once, in order.

    Returns the figures and a list of problems (empty when every question got
    exactly one reply and each chat's replies came in the order asked).
    """
    asked: list[dict] = []
    started = time.monotonic()
    for round_ in range(per_chat):
        for number in range(chats):
            user = server.user(first_user + number, f"Reader{number}")
            question = questions[(number + round_) % len(questions)]
            asked.append(server.send_text(server.private_chat(user), user, question))
    total = len(asked)

    def replies() -> dict[tuple[int, int], list[BotMessage]]:
        found: dict[tuple[int, int], list[BotMessage]] = {}
        keys = {(m["chat"]["id"], m["message_id"]) for m in asked}
        for message in server.sent:
            key = (message.chat_id, message.reply_to or 0)
            if key in keys:
                found.setdefault(key, []).append(message)
        return found

    server.wait_for(lambda: len(replies()) == total, 300, f"replies to all {total} questions")
    got = replies()
    problems = []
    slowest = 0.0
    last = started
    for message in asked:
        key = (message["chat"]["id"], message["message_id"])
        if len(got[key]) != 1:
            problems.append(f"question {key} got {len(got[key])} replies")
        slowest = max(slowest, got[key][0].at - started)
        last = max(last, got[key][0].at)
    for number in range(chats):
        chat_id = first_user + number
        order = [got[(chat_id, m["message_id"])][0].message_id for m in asked if m["chat"]["id"] == chat_id]
        if order != sorted(order):
            problems.append(f"chat {chat_id}: replies out of order {order}")
    return LoadResult(total, last - started, slowest, problems)


@dataclass
class FairnessResult:
    """What the fairness scenario measured: the others' reply latencies, with and without a flood."""

    flood: int
    idle: list[float]
    busy: list[float]

    def summary(self) -> str:
        """One line of figures."""
        return (
            f"others' replies: idle bot max {max(self.idle):.2f} s (mean {sum(self.idle) / len(self.idle):.2f} s); "
            f"while one chat floods {self.flood} questions max {max(self.busy):.2f} s "
            f"(mean {sum(self.busy) / len(self.busy):.2f} s)"
        )


def ask_and_time(server: FakeTelegram, users: list[dict], question: str, timeout: float = 300) -> list[float]:
    """Each of ``users`` asks ``question`` once in a private chat; return each reply's latency in seconds."""
    asked = [(server.send_text(server.private_chat(u), u, question), time.monotonic()) for u in users]
    latencies = []
    for message, at in asked:
        reply = server.wait_reply(message, timeout=timeout)[0]
        latencies.append(reply.at - at)
    return latencies


def run_fairness(
    server: FakeTelegram,
    question: str,
    flood: int = 700,
    others: int = 5,
    group: bool = False,
    first_user: int = 700_000,
    timeout: float = 300,
) -> FairnessResult:
    """Others ask once on an idle bot; then one chat floods ``flood`` questions and others ask once again.

    The flood comes from one user in a private chat, or (``group``) from
    ``flood`` different users asking with /ask in one group.
    """
    idle_users = [server.user(first_user + n, f"Idle{n}") for n in range(others)]
    idle = ask_and_time(server, idle_users, question, timeout)
    flooder = server.user(first_user + 100, "Flood")
    chat = server.group_chat(-(first_user + 100)) if group else server.private_chat(flooder)
    for number in range(flood):
        sender = server.user(first_user + 1000 + number, f"Member{number}") if group else flooder
        server.send_text(chat, sender, f"/ask {question}" if group else question)
    busy_users = [server.user(first_user + 200 + n, f"Busy{n}") for n in range(others)]
    busy = ask_and_time(server, busy_users, question, timeout)
    return FairnessResult(flood, idle, busy)
