"""``citebot eval``: measure answer quality on a SQuAD-format file (see :mod:`index.evaluate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings import Settings

if TYPE_CHECKING:
    from rich.table import Table


def eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``citebot eval`` to its sub-parser."""
    parser.add_argument("--squad", type=Path, required=True, metavar="FILE", help="a SQuAD v1.1 or v2.0 JSON file")
    parser.add_argument("--limit", type=_positive, metavar="N", help="ask at most N questions per article")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--baselines", action="store_true", help="also measure BM25 alone, dense (MiniLM) alone and their RRF fusion"
    )
    parser.add_argument(
        "--library",
        action="store_true",
        help="put the articles into one library and ask every question of all of it "
        "(every 6th article is held out; its questions are the off-topic ones)",
    )


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def render_summary(summary: dict[str, Any]) -> Table:
    """Return the metrics as a table: one row per metric, one column per method."""
    from rich.table import Table

    from index.evaluate import LABELS

    methods = summary["methods"]
    table = Table(title=f"{summary['file']}: {summary['articles']} articles", title_justify="left")
    table.add_column("metric")
    for name in methods:
        table.add_column(name, justify="right")
    for key, label in LABELS.items():
        values = [methods[name].get(key) for name in methods]
        if all(v is None for v in values):
            continue
        digits = 1 if key.startswith("latency") else 3
        table.add_row(label, *("–" if v is None else f"{v:.{digits}f}" for v in values))
    first = next(iter(methods.values()))
    table.add_row("questions (off-topic)", *(f"{m['questions']} ({m['offtopic_questions']})" for m in methods.values()))
    table.caption = (
        f"index build {summary['index_build_seconds_mean']:.2f} s per article (max "
        f"{summary['index_build_seconds_max']:.2f} s); {summary['unmapped_paragraphs']} SQuAD paragraphs lost "
        f"in cleaning; {summary['total_seconds']:.0f} s in all; {first['questions']} questions"
    )
    return table


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Run the evaluation and print its table (or one JSON object with ``--json``)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from index.evaluate import evaluate

    err = Console(stderr=True, highlight=False)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("questions", total=None)
        report = evaluate(
            args.squad,
            config=settings.index,
            limit=args.limit,
            baselines=args.baselines,
            library=args.library,
            min_score=settings.min_score,
            uncertain_score=settings.uncertain_score,
            on_total=lambda total: bar.update(task, total=total),
            progress=lambda done, _total: bar.update(task, completed=done),
        )
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        Console(highlight=False).print(render_summary(summary))
    return 0
