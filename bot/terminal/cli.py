"""The ``citebot`` command: the library (add, list, remove), questions (ask, console), the bot; thin over ``index``.

Commands that only read or change the catalog (``list``, ``remove``) never import the model or torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bot.settings import Settings
from bot.terminal.output import OutputError, discard_stdout, stdout, terminal
from index.config import MAX_K, TOP_K
from index.errors import CitebotError

if TYPE_CHECKING:
    from index.search.retrieve import Searcher
    from index.store.catalog import ArticleRecord

log = logging.getLogger("citebot")

#: Exit code for a user mistake (bad input, bad setting), as argparse uses.
USAGE_ERROR = 2


def _stderr():  # noqa: ANN202 - rich is imported lazily
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def load(settings: Settings, article_path: Path | None) -> Searcher:
    """Check the input (an article file, the data directory), then load the model and open the library."""
    from bot.loading import open_searcher

    with _stderr().status("Loading the model and the library…", spinner="dots"):
        return open_searcher(settings, article_path)


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


# --- the library ----------------------------------------------------------------------------------------


def _size(record: ArticleRecord) -> str:
    return f"{record.paragraphs} paragraph{'s' if record.paragraphs != 1 else ''}, {record.words:,} words"


_DONE = {
    "added": "added",
    "replaced": "replaced the earlier version of",
    "unchanged": "already in the library:",
}


def _said(status: str, record: ArticleRecord, seconds: float | None = None) -> str:
    took = f"; {seconds:.2f} s" if seconds is not None else ""
    return f"{_DONE.get(status, status)} [{record.id}] {record.label} ({_size(record)}{took})"


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add articles (files, web pages, feeds' items) to the library; each source is checked before the model loads."""
    if not args.sources and not args.feed:
        raise CitebotError("add needs at least one PATH, URL or --feed URL")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.loading import load_embedder, open_library
    from index.reading.fetch import is_web_url
    from index.sources import Change, add_feed, add_loaded, load

    library = open_library(settings)
    err = _stderr()
    loaded = []
    failed = 0
    feeds = list(args.feed or [])
    for source in args.sources:
        try:
            loaded.append(load(str(source), settings.fetch))
        except CitebotError as exc:
            failed += 1
            print(f"citebot: error: {exc}", file=sys.stderr)
    for feed in feeds:
        if not is_web_url(feed):
            failed += 1
            print(f"citebot: error: {feed}: a feed is an http:// or https:// URL", file=sys.stderr)
    feeds = [f for f in feeds if is_web_url(f)]
    if not loaded and not feeds:
        return USAGE_ERROR if failed else 0
    with err.status("Loading the model…", spinner="dots"):
        embedder = load_embedder(settings, batch=True)
        library.ensure_ready(embedder)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("adding", total=len(loaded))
        for item in loaded:
            bar.update(task, description=f"adding {item.article.label[:40]}")
            try:
                result = add_loaded(library, embedder, item)
            except CitebotError as exc:
                failed += 1
                bar.console.print(f"citebot: error: {exc}", highlight=False, markup=False)
                continue
            finally:
                bar.advance(task)
            bar.console.print(_said(result.status, result.record, result.seconds), highlight=False, markup=False)

        def report(change: Change) -> None:
            nonlocal failed
            if change.record is not None and change.status in _DONE:
                bar.console.print(_said(change.status, change.record), highlight=False, markup=False)
            else:
                failed += change.status == "failed"
                bar.console.print(f"{change.status}: {change.source}: {change.reason}", highlight=False, markup=False)

        for feed in feeds:
            bar.update(task, description=f"reading the feed {feed[:60]}")
            try:
                add_feed(library, embedder, feed, settings.fetch, report)
            except CitebotError as exc:
                failed += 1
                bar.console.print(f"citebot: error: {exc}", highlight=False, markup=False)
    return USAGE_ERROR if failed else 0


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    """Re-check every web article and feed of the library; print what changed (quiet when nothing did)."""
    from bot.loading import load_embedder, open_library
    from index.reading.fetch import is_web_url
    from index.sources import Change, refresh

    library = open_library(settings)
    out = stdout()
    failed = 0

    def report(change: Change) -> None:
        nonlocal failed
        if change.status == "unchanged" and not args.verbose:
            return
        failed += change.status == "failed"
        if change.record is not None and change.status in _DONE:
            print(_said(change.status, change.record), file=out, flush=True)
        else:
            print(
                f"{change.status}: {change.source}{': ' + change.reason if change.reason else ''}", file=out, flush=True
            )

    if not library.catalog.feeds() and not any(is_web_url(r.source) for r in library.records()):
        if args.verbose:
            print("nothing to refresh: the library has no web articles or feeds", file=out)
        return 0
    embedder = load_embedder(settings, batch=True)
    refresh(library, embedder, settings.fetch, report)
    return USAGE_ERROR if failed else 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the library's articles (reads the catalog only: no model)."""
    from index.store.library import Library

    data_dir = settings.index.data_dir
    out = stdout()
    if not Library.exists(data_dir):
        if args.json:
            print("[]", file=out)
        else:
            print(
                f"The library in {data_dir} is new: it gets the bundled article the first time you ask or add.",
                file=out,
            )
        return 0
    library = Library(data_dir, settings.index, readonly=True)
    records = library.records()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], ensure_ascii=False), file=out)
        return 0
    if not records:
        print("The library is empty. Add articles with: citebot add PATH...", file=out)
        return 0
    from rich.table import Table

    from index.reading.fetch import is_web_url

    table = Table(box=None, pad_edge=False, highlight=False)
    for name, justify in (("id", "right"), ("title", "left"), ("site", "left"), ("date", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_column("paragraphs", justify="right")
    table.add_column("added", justify="left")
    for r in records:
        site = r.site or (r.source.split("/")[2] if is_web_url(r.source) else "")
        table.add_row(str(r.id), r.label, site, r.date or "", str(r.paragraphs), r.added_at.replace("T", " ")[:16])
    terminal(out).print(table)
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Remove articles from the library by id (nothing is embedded; no model)."""
    from index.store.library import Library

    if not Library.exists(settings.index.data_dir):
        raise CitebotError(f"there is no library in {settings.index.data_dir} yet")
    library = Library(settings.index.data_dir, settings.index)
    out = stdout()
    for record in library.remove(args.ids):
        print(f"removed [{record.id}] {record.label}", file=out)
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Open the library (or one article's) and print what it holds."""
    started = time.perf_counter()
    searcher = load(settings, args.article)
    index = searcher.index
    articles = list(index.articles.values())
    sentences = sum(len(d.sentences) for d in articles)
    out = stdout()
    print(f"library       {searcher.library.directory}", file=out)
    print(f"  articles    {len(articles)}", file=out)
    print(f"  paragraphs  {index.paragraphs}", file=out)
    print(f"  sentences   {sentences}", file=out)
    print(f"  vectors     {index.vectors.total} in a faiss {index.vectors.kind} index", file=out)
    print(f"  model       {settings.index.model} ({searcher.embedder.dimension} dimensions)", file=out)
    print(f"  total time  {time.perf_counter() - started:.2f} s (with model loading)", file=out)
    return 0


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
    article_option(add("index", cmd_index, "Open the library (or one article) and show what it holds."))
    article_option(add("telegram", cmd_telegram, "Run the Telegram bot (long polling, or a webhook if configured)."))
    eval_arguments(add("eval", cmd_eval, "Measure answer quality on a SQuAD-format file."))
    doctor_arguments(add("doctor", cmd_doctor, DOCTOR_HELP))
    return parser


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
        settings = Settings() if getattr(args, "own_settings", False) else Settings.from_env()  # doctor reads its own
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
