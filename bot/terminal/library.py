"""The ``citebot`` commands on the library: add, refresh, list, remove, index.

``list`` and ``remove`` only read or change the catalog: they never import the model or torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings
from bot.terminal.output import USAGE_ERROR, stderr_console, stdout, terminal
from index.errors import CitebotError
from index.reading.display import safe_line

if TYPE_CHECKING:
    from index.search.retrieve import Searcher
    from index.sources import Change
    from index.store.catalog import ArticleRecord


def load(settings: Settings, article_path: Path | None) -> Searcher:
    """Check the input (an article file, the data directory), then load the model and open the library."""
    from bot.loading import open_searcher

    with stderr_console().status("Loading the model and the library…", spinner="dots"):
        return open_searcher(settings, article_path)


# --- the library ----------------------------------------------------------------------------------------


def _size(record: ArticleRecord) -> str:
    return f"{record.paragraphs} paragraph{'s' if record.paragraphs != 1 else ''}, {record.words:,} words"


_DONE = {
    "added": "added",
    "replaced": "replaced the earlier version of",
    "unchanged": "already in the library:",
}


def _said(status: str, record: ArticleRecord, seconds: float | None = None) -> str:
    """Return the one line that says what became of an article (its title made safe to show)."""
    took = f"; {seconds:.2f} s" if seconds is not None else ""
    return f"{_DONE.get(status, status)} [{record.id}] {safe_line(record.label)} ({_size(record)}{took})"


def _result(line: str) -> None:
    """Print one result line on standard output, whole (a pipe gets it unwrapped; a terminal wraps it itself)."""
    print(line, file=stdout(), flush=True)


def _error(exc: CitebotError | str) -> None:
    """Print one ``citebot: error:`` line on standard error (its text made safe to show)."""
    print(f"citebot: error: {safe_line(str(exc), limit=None)}", file=sys.stderr, flush=True)


def _changed(change: Change) -> str:
    """Return the line for a feed item or a refreshed article: what became of it, or why nothing did."""
    if change.record is not None and change.status in _DONE:
        return _said(change.status, change.record)
    reason = f": {safe_line(change.reason, limit=None)}" if change.reason else ""
    return f"{change.status}: {safe_line(change.source)}{reason}"


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add articles (files, web pages, feeds' items) to the library; each source is checked before the model loads.

    Results go to standard output, one line each; errors and progress to standard error. The model is loaded only
    when something must be embedded (an article the library already has costs a catalog read).
    """
    if not args.sources and not args.feed:
        raise CitebotError("add needs at least one PATH, URL or --feed URL")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.loading import LazyEmbedder, open_library
    from index.reading.fetch import is_web_url
    from index.sources import add_feed, add_loaded, load

    library = open_library(settings)
    err = stderr_console()
    loaded = []
    failed = 0
    feeds = list(args.feed or [])
    for source in args.sources:
        try:
            item = load(str(source), settings.fetch)
        except CitebotError as exc:
            failed += 1
            _error(exc)
            continue
        known = library.catalog.by_fingerprint(item.article.fingerprint)
        if known is not None:
            _result(_said("unchanged", known))
        else:
            loaded.append(item)
    for feed in feeds:
        if not is_web_url(feed):
            failed += 1
            _error(f"{feed}: a feed is an http:// or https:// URL")
    feeds = [f for f in feeds if is_web_url(f)]
    if not loaded and not feeds:
        return USAGE_ERROR if failed else 0
    embedder = LazyEmbedder(settings, batch=True)
    if loaded:
        with err.status("Loading the model…", spinner="dots"):
            library.ensure_ready(embedder.loaded())
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # On a terminal, rich prints standard output above the bar; into a pipe, results go straight to it.
    redirect = bool(sys.stdout is not None and sys.stdout.isatty())
    with Progress(*columns, console=err, transient=True, redirect_stdout=redirect, redirect_stderr=False) as bar:
        task = bar.add_task("adding", total=len(loaded))
        for item in loaded:
            bar.update(task, description=f"adding {safe_line(item.article.label, limit=40)}")
            try:
                result = add_loaded(library, embedder.loaded(), item)
            except CitebotError as exc:
                failed += 1
                _error(exc)
                continue
            finally:
                bar.advance(task)
            _result(_said(result.status, result.record, result.seconds))

        def report(change: Change) -> None:
            nonlocal failed
            failed += change.status == "failed"
            _result(_changed(change))

        for feed in feeds:
            bar.update(task, description=f"reading the feed {safe_line(feed, limit=60)}")
            try:
                add_feed(library, embedder.proxy(), feed, settings.fetch, report)
            except CitebotError as exc:
                failed += 1
                _error(exc)
    return USAGE_ERROR if failed else 0


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    """Re-check every web article and feed of the library; print what changed (quiet when nothing did).

    The model is loaded only when an article changed or a feed has a new item.
    """
    from bot.loading import LazyEmbedder, open_library
    from index.reading.fetch import is_web_url
    from index.sources import refresh

    library = open_library(settings)
    out = stdout()
    failed = 0

    def report(change: Change) -> None:
        nonlocal failed
        if change.status == "unchanged" and not args.verbose:
            return
        failed += change.status == "failed"
        print(_changed(change), file=out, flush=True)

    if not library.catalog.feeds() and not any(is_web_url(r.source) for r in library.records()):
        if args.verbose:
            print("nothing to refresh: the library has no web articles or feeds", file=out)
        return 0
    refresh(library, LazyEmbedder(settings, batch=True).proxy(), settings.fetch, report)
    return USAGE_ERROR if failed else 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the library's articles (reads the catalog only: no model).

    A damaged catalog (SQLite's quick check fails) still lists what can be read, then ends on one error line.
    """
    from index.store.library import Library, check_data_dir

    data_dir = settings.index.data_dir
    out = stdout()
    if not Library.exists(data_dir):
        check_data_dir(data_dir, create=False)  # a directory that could never hold a library is an error, not "new"
        if args.json:
            print("[]", file=out)
        else:
            print(
                f"The library in {data_dir} is new: it gets the bundled article the first time you ask or add.",
                file=out,
            )
        return 0
    library = Library(data_dir, settings.index, readonly=True)
    damage = library.catalog.damage()
    records = library.records()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], ensure_ascii=False), file=out)
    elif not records:
        print("The library is empty. Add articles with: citebot add PATH...", file=out)
    else:
        from rich.table import Table
        from rich.text import Text

        from index.reading.fetch import is_web_url

        table = Table(box=None, pad_edge=False, highlight=False)
        for name, justify in (("id", "right"), ("title", "left"), ("site", "left"), ("date", "left")):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        table.add_column("paragraphs", justify="right")
        table.add_column("added", justify="left")
        for r in records:
            site = r.site or (r.source.split("/")[2] if is_web_url(r.source) else "")
            cells = (r.label, site, r.date or "")
            table.add_row(
                str(r.id), *(Text(safe_line(c)) for c in cells), str(r.paragraphs), r.added_at.replace("T", " ")[:16]
            )
        terminal(out).print(table)
    if damage is not None:
        out.flush()
        raise damage
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Remove articles from the library by id (nothing is embedded; no model)."""
    from index.store.library import Library

    if not Library.exists(settings.index.data_dir):
        raise CitebotError(f"there is no library in {settings.index.data_dir} yet")
    library = Library(settings.index.data_dir, settings.index)
    out = stdout()
    for record in library.remove(args.ids):
        print(f"removed [{record.id}] {safe_line(record.label)}", file=out)
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Open the library (or one article's) and print what it holds."""
    started = time.perf_counter()
    searcher = load(settings, args.article)
    index = searcher.index
    if args.rebuild_engine:
        if args.article is not None or settings.index.search == "local":
            raise CitebotError("--rebuild-engine is for CITEBOT_SEARCH=qdrant (the local index rebuilds itself)")
        index.rebuild_engine()
    records = index.records
    out = stdout()
    print(f"library       {searcher.library.directory}", file=out)
    print(f"  articles    {len(records)}", file=out)
    print(f"  paragraphs  {index.paragraphs}", file=out)
    print(f"  sentences   {sum(r.sentences for r in records.values())}", file=out)
    if index.lean:
        print(f"  search      Qdrant at {index.engine.where} (articles read as questions need them)", file=out)
    else:
        print(f"  vectors     {index.vectors.total} in a faiss {index.vectors.kind} index", file=out)
    print(f"  model       {settings.index.model} ({searcher.embedder.dimension} dimensions)", file=out)
    print(f"  total time  {time.perf_counter() - started:.2f} s (with model loading)", file=out)
    return 0
