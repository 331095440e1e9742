"""Sample passages and texts for the tests of the Telegram formatting modules (html, split, buttons, texts)."""

from __future__ import annotations

import random
import re

from index.answer import ArticleRef, Passage
from tests.support.fake_telegram import parse_html

#: The article of the sample passages, and the part of its fingerprint its buttons carry.
REF = ArticleRef(7, "Harbour news", "/srv/harbour.txt", fingerprint="0123abcd" + "0" * 56)
FP = "0123abcd"


def make_passage(
    text: str,
    highlight: tuple[tuple[int, int], ...] = (),
    paragraph: int = 4,
    paragraphs: int = 21,
    article: ArticleRef = REF,
    page: int | None = None,
) -> Passage:
    """Return a passage of ``text`` (paragraph 4 of 21 of :data:`REF` unless told)."""
    return Passage(text, paragraph, paragraphs, 0.9, highlight, 0, len(text), article, page)


def bold_texts(markup: str) -> list[str]:
    """Return the visible text of each ``<b>`` element of ``markup``."""
    return [parse_html(m) for m in re.findall(r"<b>(.*?)</b>", markup, re.DOTALL)]


def flat(text: str) -> str:
    """Return ``text`` with every run of whitespace made one space."""
    return " ".join(text.split())


def sentences(count: int, seed: int = 1) -> str:
    """Return ``count`` random sentences of words that need escaping, an emoji among them."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "R&D", "x<y", "gamma", '"delta"', "eps's", "😀", "zeta"]
    return " ".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))).capitalize() + "." for _ in range(count)
    )
