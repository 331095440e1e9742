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

if TYPE_CHECKING:
    from index.search.retrieve import Searcher
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
    took = f"; {seconds:.2f} s" if seconds is not None else ""
    return f"{_DONE.get(status, status)} [{record.id}] {record.label} ({_size(record)}{took})"


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add articles (files, web pages, feeds' items) to the library; each source is checked before the model loads."""
    if not args.sources and not args.feed:
        raise CitebotError("add needs at least one PATH, URL or --feed URL")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.loading import load_embedder, open_library
    from index.sources import Change, add_feed, add_loaded, is_url, load

    library = open_library(settings)
    err = stderr_console()
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
        if not is_url(feed):
            failed += 1
            print(f"citebot: error: {feed}: a feed is an http:// or https:// URL", file=sys.stderr)
    feeds = [f for f in feeds if is_url(f)]
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

    if not library.catalog.feeds() and not any(r.source.startswith(("http://", "https://")) for r in library.records()):
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

    table = Table(box=None, pad_edge=False, highlight=False)
    for name, justify in (("id", "right"), ("title", "left"), ("site", "left"), ("date", "left")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_column("paragraphs", justify="right")
    table.add_column("added", justify="left")
    for r in records:
        site = r.site or (r.source.split("/")[2] if r.source.startswith(("http://", "https://")) else "")
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
