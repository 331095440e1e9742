"""The ``citebot`` command: argparse wiring, questions (ask, console), the bot; thin over ``index``.

The library's commands (add, refresh, list, remove, index) are in :mod:`bot.terminal.library`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bot.settings import Settings
from bot.terminal.library import cmd_add, cmd_index, cmd_list, cmd_refresh, cmd_remove, load
from bot.terminal.output import USAGE_ERROR, OutputError, discard_stdout, stdout, terminal
from index.config import MAX_K, TOP_K
from index.errors import CitebotError
from index.reading.display import safe_line

if TYPE_CHECKING:
    from index.search.retrieve import Searcher

log = logging.getLogger("citebot")


def read_line(prompt: str) -> str:
    """Return one line typed at ``prompt`` (``input``), a failing terminal raised as :class:`OutputError`."""
    try:
        return input(prompt)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot use the terminal ({exc.strerror or type(exc).__name__})") from None


def _scope(args: argparse.Namespace) -> list[int] | None:
    return list(dict.fromkeys(args.scope)) if getattr(args, "scope", None) else None


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port (a whole number from 1 to 65535)")
    return int(raw)


def _check_scope(searcher: Searcher, scope: list[int] | None) -> None:
    if scope is not None:
        searcher.library.resolve(scope)


# --- questions ----------------------------------------------------------------------------------------


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    """Open the interactive prompt on the library (or one article)."""
    from bot.terminal.console import run_console

    if args.article and args.scope:
        raise CitebotError("--in chooses articles of the library; it cannot be used with --article")
    if sys.stdin is None:
        raise CitebotError("standard input is closed; the console reads questions from it")
    searcher = load(settings, args.article)
    scope = _scope(args)
    _check_scope(searcher, scope)
    history = Path(settings.index.data_dir) / "console_history"
    console = terminal(stdout())
    return run_console(
        searcher,
        settings.top_k,
        settings.min_score,
        console,
        history,
        read=read_line,
        scope=scope,
        article=args.article,
    )


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Answer one question, or with --json and no question, one per line of standard input."""
    from index.answer import answer, clean_question

    k = args.k or settings.top_k
    if args.question is None and not args.json:
        raise CitebotError("ask needs a QUESTION (or --json to read one question per line from standard input)")
    if args.article and args.scope:
        raise CitebotError("--in chooses articles of the library; it cannot be used with --article")
    if args.question is not None:
        clean_question(args.question)  # refuse a bad question before the model loads
    elif sys.stdin is None:
        raise CitebotError("standard input is closed; give a QUESTION, or pipe questions in, one per line")
    searcher = load(settings, args.article)
    scope = _scope(args)
    _check_scope(searcher, scope)
    out = stdout()
    if args.question is not None:
        result = answer(
            searcher,
            args.question,
            k=k,
            min_score=settings.min_score,
            scope=scope,
            uncertain_score=settings.uncertain_score,
        )
        if args.json:
            out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        else:
            from bot.terminal.render import render_answer

            terminal(out).print(render_answer(result))
        return 0
    failures = 0
    for number, raw in enumerate(read_lines(sys.stdin.buffer), start=1):
        reply = batch_reply(searcher, raw, k, settings.min_score, scope, settings.uncertain_score)
        if "error" in reply:
            failures += 1
            error = safe_line(reply["error"], limit=None)
            print(f"citebot: error: line {number}: {error}", file=sys.stderr, flush=True)
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


def batch_reply(
    searcher: Searcher,
    raw: bytes | None,
    k: int,
    min_score: float,
    scope: list[int] | None = None,
    uncertain_score: float = 0.1,
) -> dict[str, Any]:
    """Return the JSON object for one batch line: the answer, or ``{"question", "error"}`` for a bad line."""
    from index.answer import MAX_QUESTION_CHARS, answer

    if raw is None:
        return {"question": "", "error": f"the line is too long (over {MAX_LINE_BYTES} bytes)"}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"question": raw.decode("utf-8", "replace")[:MAX_QUESTION_CHARS], "error": "the line is not UTF-8 text"}
    if "\0" in text:
        return {"question": text.replace("\0", "")[:MAX_QUESTION_CHARS], "error": "the line holds a NUL byte"}
    try:
        return answer(searcher, text, k=k, min_score=min_score, scope=scope, uncertain_score=uncertain_score).to_dict()
    except CitebotError as exc:
        return {"question": text[:MAX_QUESTION_CHARS], "error": str(exc)}


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the HTTP API and the page until SIGTERM or Ctrl-C."""
    from bot.serve.run import run_server

    return run_server(settings, args.article, args.host, args.port)


def cmd_telegram(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Telegram bot until SIGTERM or Ctrl-C."""
    from bot.telegram.app import run_bot

    return run_bot(settings, args.article)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Measure answer quality on a SQuAD-format file."""
    from bot.terminal.evaluation import cmd_eval as run_eval

    return run_eval(args, settings)


Command = Callable[[argparse.Namespace, Settings], int]


def _article_id(raw: str) -> int:
    try:
        value = int(raw.lstrip("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an article id (a number, see citebot list), got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an article id (a number, see citebot list), got {raw!r}")
    return value


def _k(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_K}, got {raw!r}") from None
    if not 1 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_K}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every sub-command."""
    from bot.terminal.doctor import HELP as DOCTOR_HELP
    from bot.terminal.doctor import cmd_doctor, doctor_arguments
    from bot.terminal.evaluation import eval_arguments

    parser = argparse.ArgumentParser(
        prog="citebot",
        description="Answers questions about a library of articles by quoting them, never by making text up.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def article_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--article",
            type=Path,
            metavar="PATH",
            help="answer from this text, Markdown or HTML file instead of the library",
        )

    def scope_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--in",
            dest="scope",
            type=_article_id,
            action="append",
            metavar="ID",
            help="search only this article of the library (repeat for several; default: all)",
        )

    console = add("console", cmd_console, "Ask questions at an interactive prompt.")
    scope_option(console)
    article_option(console)
    ask = add("ask", cmd_ask, "Answer one question and exit.")
    ask.add_argument("question", nargs="?", metavar="QUESTION", help="the question; omit with --json to read stdin")
    scope_option(ask)
    article_option(ask)
    ask.add_argument(
        "-k", type=_k, metavar="N", help=f"passages to return (1-{MAX_K}; default CITEBOT_TOP_K or {TOP_K})"
    )
    ask.add_argument("--json", action="store_true", help="print JSON: one object per question")
    adding = add("add", cmd_add, "Add articles to the library: files (text, Markdown, HTML, PDF), web pages, feeds.")
    adding.add_argument("sources", nargs="*", metavar="PATH_OR_URL", help="article files or http(s) URLs")
    adding.add_argument(
        "--feed", action="append", metavar="URL", help="an RSS or Atom feed: add its items (repeatable)"
    )
    refreshing = add(
        "refresh", cmd_refresh, "Re-check the library's web articles and feeds; add or replace what changed."
    )
    refreshing.add_argument("-v", "--verbose", action="store_true", help="also list what did not change")
    listing = add("list", cmd_list, "List the articles of the library.")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    removing = add("remove", cmd_remove, "Remove articles from the library.")
    removing.add_argument("ids", nargs="+", type=_article_id, metavar="ID", help="article ids (see citebot list)")
    indexing = add("index", cmd_index, "Open the library (or one article) and show what it holds.")
    article_option(indexing)
    indexing.add_argument(
        "--rebuild-engine",
        action="store_true",
        help="with CITEBOT_SEARCH=qdrant, write the engine anew from the library (the catalog is the truth)",
    )
    article_option(add("telegram", cmd_telegram, "Run the Telegram bot (long polling, or a webhook if configured)."))
    serving = add("serve", cmd_serve, "Serve the HTTP API and a page to ask from (docs/api.md).")
    serving.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine)"
    )
    serving.add_argument("--port", type=_port, default=8080, help="the port to listen on (default 8080)")
    article_option(serving)
    eval_arguments(add("eval", cmd_eval, "Measure answer quality on a SQuAD-format file."))
    doctor_arguments(add("doctor", cmd_doctor, DOCTOR_HELP))
    return parser


#: Exit code when standard output cannot be written (a full disk, a closed descriptor), as ``cat`` uses.
OUTPUT_ERROR = 1
#: Exit code after the reader of our output went away (``| head -1``): 128 + SIGPIPE, what a shell reports for
#: ``yes | head -1``'s ``yes``; nothing is printed.
BROKEN_PIPE = 128 + 13
#: The exit status after SIGTERM (128 + its number), as a shell reports a process it stopped.
TERMINATED = 128 + signal.SIGTERM


def _terminate(_signum: int, _frame: object) -> None:
    """Stop at once with one line (the SIGTERM handler of every command; the Telegram bot sets its own).

    As ``kill -9`` would, but saying so: every write of the library is safe to cut at any moment (the next writer
    tidies what was left). Raising an exception instead would not do: code it passes through may catch or turn it
    into another (an extension module interrupted while it loads raises ImportError, and citebot falls back to torch).
    """
    with contextlib.suppress(Exception):
        sys.stdout.flush()  # the lines of what was already done
    with contextlib.suppress(OSError):
        os.write(2, b"citebot: stopped by SIGTERM; what was done before it stays, what was under way is not stored\n")
    os._exit(TERMINATED)


def main(argv: list[str] | None = None) -> int:
    """Run ``citebot``; return its exit code (2 for a user mistake, with a one-line message)."""
    if sys.stderr is None:  # started with 2>&-: keep print(file=sys.stderr) from falling back to stdout
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    parser = build_parser()
    args = parser.parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set a handler
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # the bot sets its own later
    try:
        if sys.stdout is None:  # started with >&-: refuse at once rather than answer into nothing
            raise OutputError("standard output is closed; nothing could be written")
        settings = Settings() if getattr(args, "own_settings", False) else Settings.from_env()  # doctor reads its own
        logging.basicConfig(level=settings.log_level, format="citebot: %(levelname)s: %(message)s")
        code = args.func(args, settings)
        stdout().flush()
        return code
    except CitebotError as exc:
        print(f"citebot: error: {safe_line(str(exc), limit=None)}", file=sys.stderr)
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
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
