"""Background: how close unrelated questions come to an article.

Some articles attract every question a little (a long encyclopaedia page on a
broad subject); others hardly any (a short news story). So whether the
article answers a question is judged against the article's own background: a
fixed list of everyday questions on unrelated subjects
(``index/data/background_questions.txt``) is asked of every article when its
index is built, and the spread of their best cosines is kept in the manifest.
The decision model (:mod:`index.search.ranker`) then sees how many standard
deviations a question stands above that background.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from index.analysis.embed import Embedder

#: A floor on the background's spread, so a tiny article cannot make every z-score huge.
MIN_STD = 0.02


@lru_cache(maxsize=1)
def background_questions() -> tuple[str, ...]:
    """Return the shipped background questions (comment lines and blank lines skipped)."""
    text = (resources.files("index") / "data" / "background_questions.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def questions_fingerprint() -> str:
    """Return a short hash of the background questions; a stored index is rebuilt when they change."""
    return hashlib.sha256("\n".join(background_questions()).encode()).hexdigest()[:16]


_vectors: dict[str, np.ndarray] = {}


def background_vectors(embedder: Embedder) -> np.ndarray:
    """Return the background questions' vectors under ``embedder``, encoded once per model and process."""
    key = embedder.fingerprint
    if key not in _vectors:
        _vectors[key] = embedder.encode(list(background_questions()), progress=False)
    return _vectors[key]


@dataclass(frozen=True)
class Background:
    """The spread of unrelated questions' best cosines with one article."""

    mean: float = 0.0
    std: float = 1.0

    def z(self, cosine: float) -> float:
        """Return how many background standard deviations ``cosine`` stands above the background mean."""
        return (cosine - self.mean) / max(self.std, MIN_STD)


def measure(article_vectors: np.ndarray, question_vectors: np.ndarray) -> Background:
    """Return the mean and spread of each background question's best cosine with ``article_vectors``."""
    if not len(article_vectors) or not len(question_vectors):
        return Background()
    best = (question_vectors @ article_vectors.T).max(axis=1)
    return Background(mean=float(best.mean()), std=float(best.std()))


def background_ok(mean: float, std: float) -> bool:
    """Return whether a stored background is possible: a finite mean cosine in [-1, 1] and spread in [0, 1]."""
    return math.isfinite(mean) and math.isfinite(std) and -1.0 <= mean <= 1.0 and 0.0 <= std <= 1.0
