"""The ``citebot`` command: the library (add, list, remove), questions (ask, console), the bot; thin over ``index``.

Commands that only read or change the catalog (``list``, ``remove``) never import the model or torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings
from index.errors import CitebotError

if TYPE_CHECKING:
    from index.catalog import ArticleRecord
    from index.retrieve import Searcher

log = logging.getLogger("citebot")

#: Exit code for a user mistake (bad input, bad setting), as argparse uses.
USAGE_ERROR = 2
#: The most passages one answer may hold (as :data:`index.answer.MAX_K`, without importing the model's side).
MAX_K = 20


def _stderr():  # noqa: ANN202 - rich is imported lazily
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def load(settings: Settings, article_path: Path | None) -> Searcher:
    """Check the input (an article file, the data directory), then load the model and open the library."""
    from bot.loading import open_searcher

    with _stderr().status("Loading the model and the library…", spinner="dots"):
        return open_searcher(settings, article_path)


def _scope(args: argparse.Namespace) -> list[int] | None:
    return list(dict.fromkeys(args.scope)) if getattr(args, "scope", None) else None


def _check_scope(searcher: Searcher, scope: list[int] | None) -> None:
    if scope is not None:
        searcher.library.resolve(scope)


# --- questions ----------------------------------------------------------------------------------------


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    """Open the interactive prompt on the library (or one article)."""
    from rich.console import Console

    from bot.console import run_console

    if args.article and args.scope:
        raise CitebotError("--in chooses articles of the library; it cannot be used with --article")
    searcher = load(settings, args.article)
    scope = _scope(args)
    _check_scope(searcher, scope)
    history = Path(settings.index.data_dir) / "console_history"
    return run_console(searcher, settings.top_k, settings.min_score, Console(highlight=False), history, scope=scope)


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
    searcher = load(settings, args.article)
    scope = _scope(args)
    _check_scope(searcher, scope)
    if args.question is not None:
        result = answer(searcher, args.question, k=k, min_score=settings.min_score, scope=scope)
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        else:
            from rich.console import Console

            from bot.render import render_answer

            Console(highlight=False).print(render_answer(result))
        return 0
    failures = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            result = answer(searcher, line, k=k, min_score=settings.min_score, scope=scope)
        except CitebotError as exc:
            failures += 1
            print(f"citebot: error: line {number}: {exc}", file=sys.stderr)
            continue
        print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
    return USAGE_ERROR if failures else 0


# --- the library ----------------------------------------------------------------------------------------


def _size(record: ArticleRecord) -> str:
    return f"{record.paragraphs} paragraph{'s' if record.paragraphs != 1 else ''}, {record.words:,} words"


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add article files to the library; each is read and checked before the model loads."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.loading import load_embedder, open_library
    from index.ingest import read_article

    library = open_library(settings)
    err = _stderr()
    articles = []
    failed = 0
    for path in args.paths:
        try:
            article = read_article(path)
            articles.append((path, replace(article, source=str(Path(path).expanduser().resolve()))))
        except CitebotError as exc:
            failed += 1
            print(f"citebot: error: {exc}", file=sys.stderr)
    if articles:
        with err.status("Loading the model…", spinner="dots"):
            embedder = load_embedder(settings)
            library.ensure_ready(embedder)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("adding", total=len(articles))
            for path, article in articles:
                bar.update(task, description=f"adding {Path(path).name}")
                try:
                    result = library.add(article, embedder)
                except CitebotError as exc:
                    failed += 1
                    bar.console.print(f"citebot: error: {exc}")
                    continue
                finally:
                    bar.advance(task)
                record = result.record
                what = {
                    "added": "added",
                    "replaced": "replaced the earlier version of",
                    "unchanged": "already in the library:",
                }[result.status]
                bar.console.print(
                    f"{what} [{record.id}] {record.label} ({_size(record)}; {result.seconds:.2f} s)",
                    highlight=False,
                    markup=False,
                )
    return USAGE_ERROR if failed else 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the library's articles (reads the catalog only: no model)."""
    from index.library import Library

    data_dir = settings.index.data_dir
    if not Library.exists(data_dir):
        if args.json:
            print("[]")
        else:
            print(f"The library in {data_dir} is new: the bundled article is added the first time you ask or add.")
        return 0
    library = Library(data_dir, settings.index, readonly=True)
    records = library.records()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], ensure_ascii=False))
        return 0
    if not records:
        print("The library is empty. Add articles with: citebot add PATH...")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, highlight=False)
    for name, justify in (("id", "right"), ("title", "left"), ("site", "left"), ("date", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_column("paragraphs", justify="right")
    table.add_column("added", justify="left")
    for r in records:
        site = r.site or (r.source.split("/")[2] if r.source.startswith(("http://", "https://")) else "")
        table.add_row(str(r.id), r.label, site, r.date or "", str(r.paragraphs), r.added_at.replace("T", " ")[:16])
    Console(highlight=False).print(table)
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Remove articles from the library by id (nothing is embedded; no model)."""
    from index.library import Library

    if not Library.exists(settings.index.data_dir):
        raise CitebotError(f"there is no library in {settings.index.data_dir} yet")
    library = Library(settings.index.data_dir, settings.index)
    for record in library.remove(args.ids):
        print(f"removed [{record.id}] {record.label}")
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Open the library (or one article's) and print what it holds."""
    started = time.perf_counter()
    searcher = load(settings, args.article)
    index = searcher.index
    articles = list(index.articles.values())
    sentences = sum(len(d.sentences) for d in articles)
    print(f"library     {searcher.library.directory}")
    print(f"  articles    {len(articles)}")
    print(f"  paragraphs  {index.paragraphs}")
    print(f"  sentences   {sentences}")
    print(f"  vectors     {index.vectors.total} in a faiss {index.vectors.kind} index")
    print(f"  model       {settings.index.model} ({searcher.embedder.dimension} dimensions)")
    print(f"  total time  {time.perf_counter() - started:.2f} s (with model loading)")
    return 0


def cmd_telegram(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Telegram bot until SIGTERM or Ctrl-C."""
    from bot.telegram import run_bot

    return run_bot(settings, args.article)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Measure answer quality on a SQuAD-format file."""
    from bot.evaluation import cmd_eval as run_eval

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
    from bot.evaluation import eval_arguments

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
    ask.add_argument("-k", type=_k, metavar="N", help=f"passages to return (1-{MAX_K}; default CITEBOT_TOP_K or 3)")
    ask.add_argument("--json", action="store_true", help="print JSON: one object per question")
    adding = add("add", cmd_add, "Add articles (text, Markdown or HTML files) to the library.")
    adding.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="article files")
    listing = add("list", cmd_list, "List the articles of the library.")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    removing = add("remove", cmd_remove, "Remove articles from the library.")
    removing.add_argument("ids", nargs="+", type=_article_id, metavar="ID", help="article ids (see citebot list)")
    article_option(add("index", cmd_index, "Open the library (or one article) and show what it holds."))
    article_option(add("telegram", cmd_telegram, "Run the Telegram bot (long polling, or a webhook if configured)."))
    eval_arguments(add("eval", cmd_eval, "Measure answer quality on a SQuAD-format file."))
    return parser


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
