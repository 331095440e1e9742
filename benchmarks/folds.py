"""The six folds by article: the one rule every held-out figure of citebot's tuning uses.

Article ``n`` of the SQuAD 1.1 file of half A (``../shared/data/squad-v1.1-dev-A.json``) is in fold ``n % 6``; a
SQuAD 2.0 article, and every hand-written question (``benchmarks/written_questions/``), goes with its SQuAD 1.1
namesake. ``benchmarks/answer_model.py --fold K`` trains without fold K, and ``benchmarks/tune.py`` scores fold K
with that model and with linear models fitted on the other folds.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SQUAD1 = DATA / "squad-v1.1-dev-A.json"
SQUAD2 = DATA / "squad-v2.0-dev-A.json"
FOLDS = 6


def fold_of(number: int, folds: int = FOLDS) -> int:
    """Return the fold of article ``number`` (its position in the SQuAD 1.1 file)."""
    return number % folds


def fold_of_titles(squad: Path = SQUAD1) -> dict[str, int]:
    """Return each article title's fold (:func:`fold_of` its position in the SQuAD 1.1 file)."""
    data = json.loads(squad.read_text())["data"]
    return {entry["title"]: fold_of(n) for n, entry in enumerate(data)}
