"""Load on the Telegram bot: many chats asking at once, against the fake Bot API server of the tests.

Starts the fake server (tests/fake_telegram.py) and the real ``citebot telegram``,
then has CHATS users each send QUESTIONS questions at the same moment. Checks
that every question got exactly one reply and that each chat's replies came in
the order asked; prints answers per second and the slowest reply. Exits 1 if a
question was lost, answered twice or out of order.

    .venv/bin/python benchmarks/telegram_load.py [--chats 50] [--questions 4]

The bot sends at most 30 messages a second overall (Telegram's flood limit,
enforced by its rate limiter), so with enough chats that is the ceiling.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_telegram import FakeTelegram  # noqa: E402
from telegram_harness import BotProcess, run_load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--questions", type=int, default=4, help="questions per chat")
    args = parser.parse_args()
    data = json.loads((ROOT / "benchmarks" / "seed_questions.json").read_text())
    questions = [q["question"] for q in data["answerable"]] + data["offtopic"]
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as server:
        bot = BotProcess(server, Path(tmp), Path(tmp) / "data").start()
        try:
            result = run_load(server, questions, chats=args.chats, per_chat=args.questions)
        finally:
            code = bot.terminate()
    print(f"{args.chats} chats x {args.questions} questions: {result.summary()}")
    for problem in result.problems:
        print(f"problem: {problem}")
    if code != 0:
        print(f"problem: the bot exited with {code}")
    return 1 if result.problems or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
