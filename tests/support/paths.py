"""Where the tests' data lies: the repository, the tests' own files, the benchmarks' question sets, ``../shared``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
DATA = TESTS / "data"
SOURCES = DATA / "sources"
BENCHMARKS = ROOT / "benchmarks"
