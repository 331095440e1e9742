"""Load on the Telegram bot: many chats asking at once, against the fake Bot API server of the tests.

Starts the fake server (tests/support/fake_telegram.py) and the real ``citebot telegram``,
then has CHATS users each send QUESTIONS questions at the same moment. Checks
that every question got exactly one reply and that each chat's replies came in
the order asked; prints answers per second and the slowest reply. Exits 1 if a
question was lost, answered twice or out of order.

    .venv/bin/python -m benchmarks.telegram_load [--chats 50] [--questions 4]

The bot sends at most 30 messages a second overall (Telegram's flood limit,
enforced by its rate limiter), so with enough chats that is the ceiling.

The fairness scenario (``--fairness``, on by default) then has five users ask
once on the idle bot, one chat send FLOOD questions at once, and five other
users ask once: it prints the others' reply latency with and without the flood
(``--group`` floods from many users of one group with /ask instead).

    .venv/bin/python -m benchmarks.telegram_load [--flood 700] [--group] [--no-load]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.support.fake_telegram import FakeTelegram
from tests.support.paths import ROOT
from tests.support.telegram_harness import BotProcess, run_fairness, run_load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--questions", type=int, default=4, help="questions per chat")
    parser.add_argument("--flood", type=int, default=700, help="questions the flooding chat sends (0: no fairness run)")
    parser.add_argument("--group", action="store_true", help="flood from many users of one group")
    parser.add_argument("--no-load", action="store_true", help="skip the many-chats load scenario")
    args = parser.parse_args()
    data = json.loads((ROOT / "benchmarks" / "seed_questions.json").read_text())
    questions = [q["question"] for q in data["answerable"]] + data["offtopic"]
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as server:
        bot = BotProcess(server, Path(tmp), Path(tmp) / "data").start()
        problems: list[str] = []
        try:
            if not args.no_load:
                result = run_load(server, questions, chats=args.chats, per_chat=args.questions)
                print(f"{args.chats} chats x {args.questions} questions: {result.summary()}", flush=True)
                problems += result.problems
            if args.flood:
                fair = run_fairness(server, questions[0], flood=args.flood, group=args.group)
                where = f"one group ({args.flood} users, /ask)" if args.group else "one private chat"
                print(f"fairness, flood from {where}: {fair.summary()}", flush=True)
        finally:
            code = bot.terminate(timeout=120)
    for problem in problems:
        print(f"problem: {problem}")
    if code != 0:
        print(f"problem: the bot exited with {code}")
    return 1 if problems or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
