"""Cold start of ``citebot ask``: the torch runtime against the light (onnxruntime) one, side by side.

    .venv/bin/python -m benchmarks.cold_start [--repeat 5]

Each run is a fresh ``citebot ask`` process answering one question from a new library holding the bundled article.
One warm-up run per runtime first (it seeds the library and, for onnx, exports the model if it is not cached yet),
then ``--repeat`` runs of each, interleaved so both see the same load on a shared machine. It prints each runtime's
process CPU (user + sys, from ``os.wait4``), wall time and peak RSS, and the ratios, and checks that both print the
same answer. Exits 1 when the onnx runtime misses its targets: CPU at most :data:`CPU_RATIO` of torch's, peak RSS at
most :data:`MAX_RSS_MB`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Targets of the light runtime: its CPU as a share of torch's, and its peak resident memory.
CPU_RATIO = 0.25
MAX_RSS_MB = 250.0
QUESTION = "Who denied the claim?"
RUNTIMES = ("torch", "onnx")


def run(runtime: str, data_dir: Path) -> dict[str, float | str]:
    """Run ``citebot ask`` once on ``runtime``; return its CPU seconds, wall seconds, peak RSS (MB) and output."""
    citebot = Path(sys.executable).with_name("citebot")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    env.update({"CITEBOT_DATA_DIR": str(data_dir), "CITEBOT_RUNTIME": runtime, "NO_COLOR": "1", "COLUMNS": "100"})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen([str(citebot), "ask", QUESTION], stdout=out, stderr=err, env=env, cwd=data_dir)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"citebot ask ({runtime}) exited {process.returncode}: {err.read()[-500:]}")
        return {
            "cpu": usage.ru_utime + usage.ru_stime,
            "wall": wall,
            "rss": usage.ru_maxrss / 1024,
            "output": out.read(),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per runtime (after one warm-up each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citebot-cold-") as tmp:
        data_dir = Path(tmp)
        for runtime in RUNTIMES:
            run(runtime, data_dir)  # warm-up: the library is seeded, the ONNX file cached
        results: dict[str, list[dict[str, float | str]]] = {r: [] for r in RUNTIMES}
        for i in range(args.repeat):
            for runtime in RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]:
                results[runtime].append(run(runtime, data_dir))
    summary = {}
    print(f"citebot ask {QUESTION!r} on the bundled article, {args.repeat} runs each (after one warm-up each)")
    print(f"{'runtime':<8} {'CPU s (median)':>15} {'CPU s (each)':>36} {'wall s (median)':>16} {'peak RSS MB':>12}")
    for runtime, runs in results.items():
        cpu = [float(r["cpu"]) for r in runs]
        summary[runtime] = {
            "cpu": statistics.median(cpu),
            "wall": statistics.median(float(r["wall"]) for r in runs),
            "rss": max(float(r["rss"]) for r in runs),
        }
        each = " ".join(f"{c:.2f}" for c in cpu)
        s = summary[runtime]
        print(f"{runtime:<8} {s['cpu']:>15.2f} {each:>36} {s['wall']:>16.2f} {s['rss']:>12.0f}")
    cpu_ratio = summary["onnx"]["cpu"] / summary["torch"]["cpu"]
    rss_ratio = summary["onnx"]["rss"] / summary["torch"]["rss"]
    wall_ratio = summary["onnx"]["wall"] / summary["torch"]["wall"]
    print(f"onnx/torch: CPU {cpu_ratio:.3f}x (target <= {CPU_RATIO}), wall {wall_ratio:.3f}x, RSS {rss_ratio:.3f}x")
    outputs = {str(r["output"]) for runs in results.values() for r in runs}
    same = len(outputs) == 1
    print(f"same answer from both runtimes: {'yes' if same else 'NO'}")
    failures = []
    if cpu_ratio > CPU_RATIO:
        failures.append(f"onnx CPU is {cpu_ratio:.3f}x torch's (target <= {CPU_RATIO})")
    if summary["onnx"]["rss"] > MAX_RSS_MB:
        failures.append(f"onnx peak RSS is {summary['onnx']['rss']:.0f} MB (target <= {MAX_RSS_MB:.0f})")
    if not same:
        failures.append("the runtimes printed different answers")
    for failure in failures:
        print("BELOW TARGET:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
