"""Resident memory of the idle Telegram bot: the real ``citebot telegram`` against the fake Bot API server.

    .venv/bin/python -m benchmarks.telegram_idle [--runtime auto|onnx|torch] [--settle 3]

Starts the fake server (tests/support/fake_telegram.py) and the bot on a new data directory (it seeds the bundled
article), waits until it polls (``getUpdates``) and ``--settle`` seconds more, and reads the bot process's VmRSS
and VmHWM (peak) from ``/proc``; then asks it one question, waits for the reply, and reads them again (the memory
of a bot that has answered: model and library loaded). Prints one JSON line and exits 1 when the idle RSS after
start is above :data:`MAX_IDLE_MB` (the issue's target; about 580 MB on torch before the light runtime).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram_harness import BotProcess

#: The idle bot's resident memory target, in MB.
MAX_IDLE_MB = 300.0
QUESTION = "Who denied the claim?"


def memory(pid: int) -> dict[str, float]:
    """Return the process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return {"rss_mb": round(fields["VmRSS"], 1), "peak_mb": round(fields["VmHWM"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="auto", choices=("auto", "onnx", "torch"))
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the bot first polls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as server:
        started = time.perf_counter()
        bot = BotProcess(server, Path(tmp), Path(tmp) / "data", CITEBOT_RUNTIME=args.runtime).start()
        polling = time.perf_counter() - started
        assert bot.process is not None
        try:
            time.sleep(args.settle)  # idle: nothing to do but poll
            idle = memory(bot.process.pid)
            user = server.user(700_001, "Reader")
            asked = server.send_text(server.private_chat(user), user, QUESTION)
            chat, message = asked["chat"]["id"], asked["message_id"]
            server.wait_for(
                lambda: any(m.chat_id == chat and m.reply_to == message for m in server.sent), 300, "the answer"
            )
            time.sleep(args.settle)
            answered = memory(bot.process.pid)
        finally:
            code = bot.terminate(timeout=120)
    report = {
        "runtime": args.runtime,
        "polling_after_s": round(polling, 1),
        "idle_rss_mb": idle["rss_mb"],
        "idle_peak_mb": idle["peak_mb"],
        "answered_rss_mb": answered["rss_mb"],
        "answered_peak_mb": answered["peak_mb"],
        "exit_code": code,
    }
    print(json.dumps(report))
    if idle["rss_mb"] > MAX_IDLE_MB:
        print(f"above target: idle RSS {idle['rss_mb']} MB (target <= {MAX_IDLE_MB:.0f} MB)", file=sys.stderr)
        return 1
    return 1 if code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
