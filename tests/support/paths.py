"""Where the tests' data lies: the repository, the tests' own files, the benchmarks' question sets, ``../shared``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
DATA = TESTS / "data"
SOURCES = DATA / "sources"
BENCHMARKS = ROOT / "benchmarks"
#: The installed ``citebot`` command beside the running interpreter (what the tests run as a user would).
CITEBOT = str(Path(sys.executable).with_name("citebot"))
