"""The ``citebot`` command: console, one-shot questions, indexing; a thin layer over ``index``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console

from bot.evaluation import cmd_eval, eval_arguments
from bot.output import OutputError, discard_stdout, stdout, terminal
from bot.settings import Settings
from index.answer import MAX_K, MAX_QUESTION_CHARS, answer, clean_question
from index.build import BuildReport, open_article
from index.errors import CitebotError
from index.ingest import Article, read_article
from index.retrieve import Retriever

log = logging.getLogger("citebot")

#: Exit code for a user mistake (bad input, bad setting), as argparse uses.
USAGE_ERROR = 2


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def read_line(prompt: str) -> str:
    """Return one line typed at ``prompt`` (``input``), a failing terminal raised as :class:`OutputError`."""
    try:
        return input(prompt)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot use the terminal ({exc.strerror or type(exc).__name__})") from None


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

    if sys.stdin is None:
        raise CitebotError("standard input is closed; the console reads questions from it")
    _, retriever, _ = load(settings, args.article)
    history = Path(settings.index.data_dir) / "console_history"
    return run_console(retriever, settings.top_k, settings.min_score, terminal(stdout()), history, read=read_line)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Answer one question, or with --json and no question, one per line of standard input."""
    k = args.k or settings.top_k
    if args.question is None and not args.json:
        raise CitebotError("ask needs a QUESTION (or --json to read one question per line from standard input)")
    if args.question is not None:
        clean_question(args.question)  # refuse a bad question before the model loads
    elif sys.stdin is None:
        raise CitebotError("standard input is closed; give a QUESTION, or pipe questions in, one per line")
    _, retriever, _ = load(settings, args.article)
    out = stdout()
    if args.question is not None:
        result = answer(retriever, args.question, k=k, min_score=settings.min_score)
        if args.json:
            out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        else:
            from bot.render import render_answer

            terminal(out).print(render_answer(result))
        return 0
    failures = 0
    for number, raw in enumerate(read_lines(sys.stdin.buffer), start=1):
        reply = batch_reply(retriever, raw, k, settings.min_score)
        if "error" in reply:
            failures += 1
            print(f"citebot: error: line {number}: {reply['error']}", file=sys.stderr, flush=True)
        out.write(json.dumps(reply, ensure_ascii=False) + "\n")
        out.flush()
    return USAGE_ERROR if failures else 0


#: A batch line longer than this many bytes is not kept in memory: it gets an error object, the rest is skipped.
MAX_LINE_BYTES = 64 * 1024


def read_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Yield each line of ``stream`` without its line ending, or ``None`` for one over ``limit`` bytes.

    Lines end at ``\\n`` only (a ``\\r`` before it is dropped), so the lines counted here are the
    lines ``wc -l`` and ``paste`` count.
    """
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line.removesuffix(b"\n").removesuffix(b"\r")


def batch_reply(retriever: Retriever, raw: bytes | None, k: int, min_score: float) -> dict[str, Any]:
    """Return the JSON object for one batch line: the answer, or ``{"question", "error"}`` for a bad line."""
    if raw is None:
        return {"question": "", "error": f"the line is too long (over {MAX_LINE_BYTES} bytes)"}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"question": raw.decode("utf-8", "replace")[:MAX_QUESTION_CHARS], "error": "the line is not UTF-8 text"}
    if "\0" in text:
        return {"question": text.replace("\0", "")[:MAX_QUESTION_CHARS], "error": "the line holds a NUL byte"}
    try:
        return answer(retriever, text, k=k, min_score=min_score).to_dict()
    except CitebotError as exc:
        return {"question": text[:MAX_QUESTION_CHARS], "error": str(exc)}


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Build or refresh the article's index and print what it holds."""
    started = time.perf_counter()
    article, retriever, report = load(settings, args.article)
    index = retriever.index
    how = f"built ({report.reason})" if report.built else "reused"
    out = stdout()
    print(f"{article.label}", file=out)
    print(f"  source      {article.source}", file=out)
    print(f"  paragraphs  {len(article.paragraphs)}", file=out)
    print(f"  sentences   {len(index.sentences)}", file=out)
    print(f"  chunks      {len(index.chunks)} (windows of up to {settings.index.window} sentences)", file=out)
    print(f"  model       {settings.index.model} ({retriever.embedder.dimension} dimensions)", file=out)
    print(f"  index       {how} in {report.seconds:.2f} s, at {report.directory}", file=out)
    print(f"  total time  {time.perf_counter() - started:.2f} s (with model loading)", file=out)
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


#: Exit code when standard output cannot be written (a full disk, a closed descriptor), as ``cat`` uses.
OUTPUT_ERROR = 1
#: Exit code after the reader of our output went away (``| head -1``): 128 + SIGPIPE, what a shell reports for
#: ``yes | head -1``'s ``yes``; nothing is printed.
BROKEN_PIPE = 128 + 13


def main(argv: list[str] | None = None) -> int:
    """Run ``citebot``; return its exit code (2 for a user mistake, with a one-line message)."""
    if sys.stderr is None:  # started with 2>&-: keep print(file=sys.stderr) from falling back to stdout
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if sys.stdout is None:  # started with >&-: refuse at once rather than answer into nothing
            raise OutputError("standard output is closed; nothing could be written")
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="citebot: %(levelname)s: %(message)s")
        code = args.func(args, settings)
        stdout().flush()
        return code
    except CitebotError as exc:
        print(f"citebot: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        discard_stdout()
        return BROKEN_PIPE
    except OutputError as exc:
        discard_stdout()
        print(f"citebot: error: {exc}", file=sys.stderr)
        return OUTPUT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
