"""A bot process on Qdrant holds no more of the library as it grows: memory and answer time at 1k and 100k paragraphs.

    python -m benchmarks.qdrant_memory [--sizes 1000 100000] [--queries 100]

The libraries are :mod:`benchmarks.library_scale`'s (real text; real vectors to 10,000 paragraphs, near copies of
them above; built once and cached). For each size, a process of its own writes the library into a Qdrant Edge shard
(``CITEBOT_SEARCH=qdrant``; timed), then two fresh processes, one per engine, open the library as a front end does
and answer the same real SQuAD questions (question embedding included, one thread). Each prints its answer p50 / p95
and its memory afterwards: RSS split into anonymous memory (what the process allocated: the library it holds) and
file-backed pages (mapped files: the model, Edge's segments), and its peak. Then it adds an article and times the
next question's refresh (on Qdrant, the engine's sync: Edge optimises after each change).

Exits 1 when the Qdrant process's RSS grows by more than :data:`GROWTH_MB` from the smallest size to the largest.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.library_scale import _built_library, _sentences_and_questions
from index.config import IndexConfig

#: The issue's bound on a Qdrant bot process's growth from 1k to 100k paragraphs.
GROWTH_MB = 50.0


def _config(workdir: Path, search: str) -> IndexConfig:
    return IndexConfig(data_dir=workdir, seed=False, search=search, qdrant_path=workdir / "qdrant")


def _memory() -> dict[str, float]:
    """Return this process's RSS now, anonymous and file-backed, and its peak (MB)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    fields["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return fields


def sync(workdir: Path) -> None:
    """Write the library in ``workdir`` into its Edge shard (a process of its own)."""
    from index.analysis.embed import Embedder
    from index.search.retrieve import Searcher
    from index.store.library import Library

    searcher = Searcher(Library(workdir, _config(workdir, "qdrant")), Embedder(threads=1))
    started = time.perf_counter()
    searcher.index.close()
    print(json.dumps({"sync_s": time.perf_counter() - started}))


def measure(workdir: Path, search: str, questions: list[str]) -> None:
    """Open the library as a front end does, answer ``questions`` and print the times and the memory."""
    from index.analysis.embed import Embedder
    from index.answer import answer
    from index.search.retrieve import Searcher
    from index.store.library import Library

    searcher = Searcher(Library(workdir, _config(workdir, search)), Embedder(threads=1))
    answer(searcher, questions[0])  # opens everything
    opened = _memory()
    times = []
    for question in questions:
        t0 = time.perf_counter()
        answer(searcher, question)
        times.append(1000 * (time.perf_counter() - t0))
    index = searcher.index
    held = getattr(index.articles, "held", len(index.articles))
    paragraphs = index.paragraphs
    memory = _memory()
    # An add as `citebot add` makes it, then the next question's refresh (on Qdrant: the engine's sync).
    from index.reading.article import article_from_paragraphs

    sentences, _ = _sentences_and_questions()
    rng = random.Random(f"new article {search}")  # each run its own text: an add, not an "unchanged"
    new = article_from_paragraphs(
        [" ".join(rng.sample(sentences, 5)) for _ in range(20)], title="New", source=f"/bench/new-{search}.txt"
    )
    t0 = time.perf_counter()
    searcher.library.add(new, searcher.embedder)
    t1 = time.perf_counter()
    searcher.index  # noqa: B018 - the refresh (and sync) the next question makes
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "add_s": t1 - t0,
                "refresh_after_add_s": t2 - t1,
                "p50_ms": float(np.percentile(times, 50)),
                "p95_ms": float(np.percentile(times, 95)),
                "opened_rss_mb": opened["VmRSS"],
                **{f"{k.lower()}_mb": v for k, v in memory.items()},
                "paragraphs": paragraphs,  # before the add
                "articles_held": held,
            }
        )
    )
    index.close()


def _child(*args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.qdrant_memory", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--sync", help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sync:
        sync(Path(args.sync))
        return 0
    if args.measure:
        measure(Path(args.measure[0]), args.measure[1], json.loads(Path(args.measure[2]).read_text()))
        return 0
    _, questions = _sentences_and_questions()
    asked = random.Random(3).sample(questions, args.queries)
    rows = []
    with tempfile.TemporaryDirectory(prefix="citebot-qdrant-memory-") as tmp:
        asked_file = Path(tmp) / "questions.json"
        asked_file.write_text(json.dumps(asked))
        for size in args.sizes:
            workdir = Path(tmp) / str(size)
            _built_library(size, workdir)
            synced = _child("--sync", str(workdir))
            for search in ("local", "qdrant"):
                row = {"size": size, "search": search, **_child("--measure", str(workdir), search, str(asked_file))}
                if search == "qdrant":
                    row["sync_s"] = synced["sync_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        "| paragraphs | search | answer p50 / p95 ms | RSS MB (anonymous + file) | peak MB | articles held "
        "| add s, then refresh s |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['paragraphs']:,} | {r['search']} | {r['p50_ms']:.1f} / {r['p95_ms']:.1f} | "
            f"{r['vmrss_mb']:.0f} ({r['rssanon_mb']:.0f} + {r['rssfile_mb']:.0f}) | {r['peak_mb']:.0f} | "
            f"{r['articles_held']:,} | {r['add_s']:.1f}, {r['refresh_after_add_s']:.1f} |"
        )
    by = {(r["size"], r["search"]): r for r in rows}
    small, large = min(args.sizes), max(args.sizes)
    for size in args.sizes:
        ratio = by[(size, "qdrant")]["p50_ms"] / by[(size, "local")]["p50_ms"]
        print(f"{size:,} paragraphs: Qdrant Edge / local answer p50 = {ratio:.2f}")
    growth = by[(large, "qdrant")]["vmrss_mb"] - by[(small, "qdrant")]["vmrss_mb"]
    anon = by[(large, "qdrant")]["rssanon_mb"] - by[(small, "qdrant")]["rssanon_mb"]
    local = by[(large, "local")]["vmrss_mb"] - by[(small, "local")]["vmrss_mb"]
    print(
        f"RSS growth {small:,} -> {large:,} paragraphs: "
        f"Qdrant {growth:+.0f} MB (anonymous {anon:+.0f}), local {local:+.0f}"
    )
    met = growth <= GROWTH_MB
    print(f"Qdrant growth <= {GROWTH_MB:.0f} MB: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
