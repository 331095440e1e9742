"""The ``citebot`` command: console, one-shot questions, indexing; a thin layer over ``index``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bot.evaluation import cmd_eval, eval_arguments
from bot.settings import Settings
from index.answer import MAX_K, answer, clean_question
from index.build import BuildReport, open_article
from index.errors import CitebotError
from index.ingest import Article, read_article
from index.retrieve import Retriever

log = logging.getLogger("citebot")

#: Exit code for a user mistake (bad input, bad setting), as argparse uses.
USAGE_ERROR = 2


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def load(settings: Settings, article_path: Path | None) -> tuple[Article, Retriever, BuildReport]:
    """Read the article (failing fast on bad input, before the model loads), then open its index."""
    article = read_article(article_path or settings.article)
    err = _stderr()
    with err.status(f"Loading the model and the index of “{article.label}”…", spinner="dots"):
        retriever, report = open_article(article, settings.index)
    return article, retriever, report


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    """Open the interactive prompt on the article."""
    from bot.console import run_console

    _, retriever, _ = load(settings, args.article)
    history = Path(settings.index.data_dir) / "console_history"
    return run_console(retriever, settings.top_k, settings.min_score, Console(highlight=False), history)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Answer one question, or with --json and no question, one per line of standard input."""
    k = args.k or settings.top_k
    if args.question is None and not args.json:
        raise CitebotError("ask needs a QUESTION (or --json to read one question per line from standard input)")
    if args.question is not None:
        clean_question(args.question)  # refuse a bad question before the model loads
    _, retriever, _ = load(settings, args.article)
    if args.question is not None:
        result = answer(retriever, args.question, k=k, min_score=settings.min_score)
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        else:
            from bot.render import render_answer

            Console(highlight=False).print(render_answer(result))
        return 0
    failures = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            result = answer(retriever, line, k=k, min_score=settings.min_score)
        except CitebotError as exc:
            failures += 1
            print(f"citebot: error: line {number}: {exc}", file=sys.stderr)
            continue
        print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
    return USAGE_ERROR if failures else 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Build or refresh the article's index and print what it holds."""
    started = time.perf_counter()
    article, retriever, report = load(settings, args.article)
    index = retriever.index
    how = f"built ({report.reason})" if report.built else "reused"
    print(f"{article.label}")
    print(f"  source      {article.source}")
    print(f"  paragraphs  {len(article.paragraphs)}")
    print(f"  sentences   {len(index.sentences)}")
    print(f"  chunks      {len(index.chunks)} (windows of up to {settings.index.window} sentences)")
    print(f"  model       {settings.index.model} ({retriever.embedder.dimension} dimensions)")
    print(f"  index       {how} in {report.seconds:.2f} s, at {report.directory}")
    print(f"  total time  {time.perf_counter() - started:.2f} s (with model loading)")
    return 0


def cmd_telegram(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Telegram bot until SIGTERM or Ctrl-C."""
    from bot.telegram import run_bot

    return run_bot(settings, args.article)


Command = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="citebot",
        description="Answers questions about an article by quoting it, never by making text up.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def article_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--article", type=Path, metavar="PATH", help="text, Markdown or HTML file (default: the bundled article)"
        )

    article_option(add("console", cmd_console, "Ask questions at an interactive prompt."))
    ask = add("ask", cmd_ask, "Answer one question and exit.")
    ask.add_argument("question", nargs="?", metavar="QUESTION", help="the question; omit with --json to read stdin")
    article_option(ask)
    ask.add_argument("-k", type=_k, metavar="N", help=f"passages to return (1-{MAX_K}; default CITEBOT_TOP_K or 3)")
    ask.add_argument("--json", action="store_true", help="print JSON: one object per question")
    article_option(add("index", cmd_index, "Build or refresh the index of the article and show what it holds."))
    article_option(add("telegram", cmd_telegram, "Run the Telegram bot (long polling, or a webhook if configured)."))
    eval_arguments(add("eval", cmd_eval, "Measure answer quality on a SQuAD-format file."))
    return parser


def _k(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_K}, got {raw!r}") from None
    if not 1 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_K}, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run ``citebot``; return its exit code (2 for a user mistake, with a one-line message)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="citebot: %(levelname)s: %(message)s")
        return args.func(args, settings)
    except CitebotError as exc:
        print(f"citebot: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
