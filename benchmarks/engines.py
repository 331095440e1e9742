"""The first stage on Qdrant (Edge) against the local engine, on one library: the same answers?

Builds one library on disk of a SQuAD file's articles (as ``citebot eval --library`` does: every sixth article held
out, its questions asked as off-topic), asks every question once searched by the local engine and once by Qdrant
Edge (the same catalog and vectors), on one thread, in one run, and prints both engines' figures, their differences,
and issue 25's target: R@1, R@3 and the verdicts equal within 0.005. Exits 1 when a difference is larger.

    python -m benchmarks.engines                      # half A (../shared/data/squad-v1.1-dev-A.json)
    python -m benchmarks.engines FILE --limit 20      # at most 20 questions an article
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.folds import SQUAD1
from index.analysis.embed import Embedder
from index.config import IndexConfig
from index.evaluate import evaluate, summarize

#: Issue 25's target: Qdrant's figures within this of the local engine's.
TOLERANCE = 0.005
#: The figures compared.
MEASURES = ("paragraph_r1", "paragraph_r3", "answer_in_highlight", "answerable_found", "offtopic_rejected")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", nargs="?", type=Path, default=SQUAD1)
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions an article")
    args = parser.parse_args()
    embedder = Embedder(threads=1)
    embedder.progress = False
    figures: dict[str, dict[str, float]] = {}
    work = Path(tempfile.mkdtemp(prefix="citebot-engines-"))
    try:
        for search in ("local", "qdrant"):
            config = IndexConfig(threads=1, seed=False, search=search, qdrant_path=work / f"edge-{search}")
            report = evaluate(
                args.squad, config, embedder, limit=args.limit, library=True, directory=work / f"data-{search}"
            )
            figures[search] = summarize(report.outcomes["citebot"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local, qdrant = figures["local"], figures["qdrant"]
    asked = f"{local['questions']} answerable, {local['offtopic_questions']} off-topic"
    print(f"{args.squad.name} as one library ({asked}), one thread, the same run:")
    print("| measure | local | Qdrant Edge | difference | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    missed = []
    for name in (*MEASURES, "latency_ms_p50"):
        a, b = float(local[name]), float(qdrant[name])
        target = ""
        if name in MEASURES:
            ok = abs(a - b) <= TOLERANCE
            target = f"within {TOLERANCE}: {'met' if ok else 'MISSED'}"
            missed += [] if ok else [name]
        print(f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} | {target} |")
    print(json.dumps(figures, indent=1))
    if missed:
        print("outside the target: " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
