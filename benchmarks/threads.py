"""How many threads the model should use: one question's embedding, and a batch's, idle and under CPU contention.

    .venv/bin/python benchmarks/threads.py [--questions 60]

Each setting runs in a fresh process (torch fixes its thread pool at start-up). "Contended" runs two busy
processes beside it, one per core of this 2-core machine, as a second citebot or any other job would.
Prints the median time of one question and of a batch of 256 sentences for each thread count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

CHILD = """
import json, statistics, sys, time
from index.analysis.embed import Embedder
threads = int(sys.argv[1]) or None
embedder = Embedder(threads=threads)
questions = [f"Which roads meet at the town number {i}?" for i in range(int(sys.argv[2]))]
embedder.encode_query("warm up")
one = []
for q in questions:
    t0 = time.perf_counter(); embedder.encode_query(q); one.append(1000 * (time.perf_counter() - t0))
sentences = [f"Sentence {i} of a long article about the harbour, its ships and its people." for i in range(256)]
t0 = time.perf_counter(); embedder.encode(sentences, progress=False); batch = time.perf_counter() - t0
print(json.dumps({"question_ms_p50": round(statistics.median(one), 1), "batch_256_s": round(batch, 2)}))
"""


def _burn(stop: float) -> None:
    while time.monotonic() < stop:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=60)
    args = parser.parse_args()
    counts = [1, 2, 0]  # 0: torch's default
    for contended in (False, True):
        for threads in counts:
            burners = []
            if contended:
                stop = time.monotonic() + 600
                burners = [multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(os.cpu_count() or 2)]
                for burner in burners:
                    burner.start()
            try:
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, str(threads), str(args.questions)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            finally:
                for burner in burners:
                    burner.terminate()
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            label = f"{threads} thread{'s' if threads != 1 else ''}" if threads else "torch default"
            print(f"{'contended' if contended else 'idle':9s} {label:14s} {json.dumps(figures)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
