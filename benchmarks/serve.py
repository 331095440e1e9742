"""``citebot serve`` under load: requests per second and latency of ``POST /v1/ask`` at 1, 4 and 16 clients.

    python -m benchmarks.serve [--requests 200]

Two libraries: the bundled article alone (asked ``benchmarks/seed_questions.json``'s questions) and 24 articles (the
bundled one and the first 23 of ``../shared/data/squad-v1.1-dev-A.json``, asked their SQuAD questions; built once and
cached in ``~/.cache/citebot-bench``). For each, the real ``citebot serve`` runs on a free port of 127.0.0.1 and each
client (a thread with its own connection) asks in turn; printed per client count: requests/s, p50 / p95 ms and the
server's RSS afterwards. In the same run, the same questions go through ``citebot ask --json`` (one process, the
questions on standard input): its seconds per question, without the process's start (timed with 1 question and with
all), for the ratio to ``/v1/ask`` at one client.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.folds import SQUAD1
from tests.support.citebot import citebot_environment
from tests.support.paths import BENCHMARKS, CITEBOT

CACHE = Path.home() / ".cache" / "citebot-bench"
CLIENTS = (1, 4, 16)


def _library(articles: int) -> tuple[Path, list[str]]:
    """Return a cached library of the bundled article plus ``articles - 1`` SQuAD articles, and its questions."""
    from index.analysis.embed import Embedder
    from index.config import IndexConfig
    from index.evaluate import load_squad, squad_to_article
    from index.store.library import Library

    if articles == 1:
        seed = json.loads((BENCHMARKS / "seed_questions.json").read_text())
        questions = [q["question"] for q in seed["answerable"]] + list(seed["offtopic"])
    else:
        squad = load_squad(SQUAD1)[: articles - 1]
        questions = [q.question for a in squad for q in a.questions]
    folder = CACHE / f"serve-{articles}"
    if not (folder / "complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        library = Library(folder, IndexConfig(data_dir=folder))
        embedder = Embedder()
        embedder.progress = False
        library.ensure_ready(embedder)
        if articles > 1:
            for article in load_squad(SQUAD1)[: articles - 1]:
                library.add(squad_to_article(article), embedder)
        library.close()
        (folder / "complete").touch()
    return folder, questions


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _serve(data_dir: Path, work: Path) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = citebot_environment(work, {"CITEBOT_DATA_DIR": str(data_dir), "CITEBOT_API_BURST": "10000"})
    env["CITEBOT_API_PER_MINUTE"] = "600000"
    process = subprocess.Popen(
        [CITEBOT, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL, text=True, cwd=work
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("citebot serve did not become ready")
        time.sleep(0.2)


def _load(base: str, questions: list[str], clients: int, requests: int) -> dict[str, float]:
    """Ask ``requests`` questions over ``clients`` threads; return requests/s, p50 and p95 (ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for number in counter:
                question = questions[number % len(questions)]
                t0 = time.perf_counter()
                reply = http.post("/v1/ask", json={"question": question})
                took = 1000 * (time.perf_counter() - t0)
                assert reply.status_code == 200, reply.text
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "rps": len(latencies) / wall,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }


def _cli_seconds_per_question(data_dir: Path, work: Path, questions: list[str]) -> float:
    env = citebot_environment(work, {"CITEBOT_DATA_DIR": str(data_dir)})

    def run(asked: list[str]) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(
            [CITEBOT, "ask", "--json"], input="\n".join(asked) + "\n", capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        return time.perf_counter() - t0

    run(questions[:1])  # warm the page cache
    one, every = run(questions[:1]), run(questions)
    return (every - one) / (len(questions) - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="questions asked per client count")
    args = parser.parse_args()
    rows = []
    for articles in (1, 24):
        data_dir, questions = _library(articles)
        random.Random(articles).shuffle(questions)
        questions = questions[: args.requests]
        with tempfile.TemporaryDirectory(prefix="citebot-serve-bench-") as tmp:
            work = Path(tmp)
            copy = work / "data"
            shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("complete"))
            process, base = _serve(copy, work)
            try:
                _load(base, questions, 1, min(20, len(questions)))  # warm
                for clients in CLIENTS:
                    measured = _load(base, questions, clients, args.requests)
                    rows.append({"articles": articles, "clients": clients, **measured, "rss": _rss_mb(process.pid)})
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            cli = _cli_seconds_per_question(copy, work, questions)
            at_one = next(r for r in rows if r["articles"] == articles and r["clients"] == 1)
            rows[-len(CLIENTS)]["cli_ms"] = 1000 * cli
            print(
                f"{articles} articles: citebot ask --json {1000 * cli:.1f} ms a question; /v1/ask p50 at one "
                f"client / ask --json = {at_one['p50'] / (1000 * cli):.2f}",
                flush=True,
            )
    print("| articles | clients | requests/s | p50 ms | p95 ms | server RSS MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['articles']} | {r['clients']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['rss']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
