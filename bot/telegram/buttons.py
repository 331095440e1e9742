"""Buttons under the bot's messages, with all they do carried in their callback data (so they survive restarts).

Pure functions, no network and no ``telegram`` import: a button is a (label, callback data) pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.answer import MAX_K, Passage

#: Telegram's limit on a button's callback data, in bytes.
MAX_CALLBACK_DATA = 64
#: How many hex digits of the article's fingerprint a button carries.
FINGERPRINT_DIGITS = 8


@dataclass(frozen=True)
class Button:
    """What an answer's button does, all of it carried in its callback data so it survives restarts.

    Attributes:
        kind: ``"context"`` (the neighbouring paragraphs), ``"next"`` (the passage
            at ``rank`` for the question the message replies to) or ``"closest"``
            (the nearest passage of an unanswered question).
        article: the id of the article of the passage shown.
        fingerprint: the first hex digits of that article's fingerprint; a button
            made for another version of the article is stale.
        paragraph: 1-based paragraph (``context``, ``closest``).
        start: start of the answering sentence in the paragraph (``context``, ``closest``).
        end: its end.
        rank: 0-based rank of the passage to show (``next``).
    """

    kind: str
    article: int
    fingerprint: str
    paragraph: int = 0
    start: int = 0
    end: int = 0
    rank: int = 0

    def encode(self) -> str:
        """Return the callback data, at most :data:`MAX_CALLBACK_DATA` bytes."""
        if self.kind == "next":
            data = f"n:{self.article}:{self.fingerprint}:{self.rank}"
        else:
            code = "c" if self.kind == "context" else "x"
            data = f"{code}:{self.article}:{self.fingerprint}:{self.paragraph}:{self.start}:{self.end}"
        if len(data.encode()) > MAX_CALLBACK_DATA:
            raise ValueError(f"callback data too long: {data!r}")
        return data

    @property
    def highlight(self) -> tuple[tuple[int, int], ...]:
        """The answering sentence's span, or nothing when there is none."""
        return ((self.start, self.end),) if self.end > self.start else ()


_KINDS = {"n": "next", "c": "context", "x": "closest"}
_DATA = re.compile(r"([ncx]):(\d{1,9}):([0-9a-f]{1,16})((?::\d{1,9})+)")


def decode_button(data: str | None) -> Button | None:
    """Return the :class:`Button` encoded in ``data``, or ``None`` when it is not one of ours."""
    match = _DATA.fullmatch(data or "")
    if not match:
        return None
    kind, article, fingerprint = _KINDS[match.group(1)], int(match.group(2)), match.group(3)
    numbers = [int(n) for n in match.group(4)[1:].split(":")]
    if kind == "next":  # a rank past the last passage an answer can have is forged or broken
        if len(numbers) == 1 and 1 <= numbers[0] < MAX_K:
            return Button(kind, article, fingerprint, rank=numbers[0])
        return None
    if len(numbers) != 3:
        return None
    return Button(kind, article, fingerprint, paragraph=numbers[0], start=numbers[1], end=numbers[2])


def passage_button(kind: str, passage: Passage) -> Button:
    """Return a ``context`` or ``closest`` button for ``passage``."""
    start, end = passage.highlight[0] if passage.highlight else (0, 0)
    ref = passage.article
    return Button(kind, ref.id, short(ref.fingerprint), paragraph=passage.paragraph, start=start, end=end)


def short(fingerprint: str) -> str:
    """Return the part of an article's fingerprint that buttons carry."""
    return fingerprint[:FINGERPRINT_DIGITS]


def answer_buttons(passage: Passage, rank: int = 0) -> list[tuple[str, str]]:
    """Return the (label, callback data) buttons under a shown passage: More context, Next match."""
    buttons = [("More context", passage_button("context", passage).encode())]
    if rank + 1 < MAX_K:
        ref = passage.article
        buttons.append(("Next match", Button("next", ref.id, short(ref.fingerprint), rank=rank + 1).encode()))
    return buttons


def closest_buttons(passage: Passage | None) -> list[tuple[str, str]]:
    """Return the button under a "does not answer" reply: Show closest passage."""
    if passage is None:
        return []
    return [("Show closest passage", passage_button("closest", passage).encode())]


@dataclass(frozen=True)
class LibraryButton:
    """A button of /articles: ``"use"`` an article (``article`` 0: the whole library) or show ``"page"`` N."""

    kind: str
    value: int

    def encode(self) -> str:
        """Return the callback data."""
        return f"{'u' if self.kind == 'use' else 'p'}:{self.value}"


_LIBRARY_DATA = re.compile(r"([up]):(\d{1,9})")


def decode_library_button(data: str | None) -> LibraryButton | None:
    """Return the :class:`LibraryButton` encoded in ``data``, or ``None`` when it is not one."""
    match = _LIBRARY_DATA.fullmatch(data or "")
    if not match:
        return None
    return LibraryButton("use" if match.group(1) == "u" else "page", int(match.group(2)))
