"""Untrusted text made safe to show: an article's title or text, a URL, an error naming them, on any screen.

Text from an article or a URL may hold control characters (a terminal escape, a carriage return that
overwrites what came before) or Unicode's bidirectional overrides and isolates (``"title \\u202egnp.exe"``
shows as ``"title exe.png"``). Front ends (the terminal, the Telegram bot) pass such text through
:func:`safe_line` (one bounded line: titles, URLs, messages) or :func:`safe_text` (a passage: same length, so
offsets into it still hold) before showing it. Neither escapes markup: a front end still prints the result as
plain text (rich ``Text``, ``markup=False``; Telegram's HTML escaping).
"""

from __future__ import annotations

import re
import unicodedata

#: A title, a URL or a message is cut to this many characters on screen (the catalog keeps it whole).
DISPLAY_CHARS = 200
#: What stands in for a character that must not reach a screen.
REPLACEMENT = "\ufffd"
#: Bidirectional embeddings, overrides and isolates, and the invisible marks: they reorder or hide what follows.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_SPACE = re.compile(r"\s+")


def _unsafe(char: str) -> bool:
    """Return whether ``char`` must not reach a screen as it is (control, bidi control, line separator)."""
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def safe_text(text: str) -> str:
    """Return ``text`` with every control and bidi-control character replaced by U+FFFD, one for one.

    Newlines and tabs stay (a passage keeps its lines); the length is unchanged, so offsets into ``text``
    (a highlighted sentence) stay valid.
    """
    if text.isprintable():
        return text
    return "".join(REPLACEMENT if char not in "\n\t" and _unsafe(char) else char for char in text)


def safe_line(text: str, limit: int | None = DISPLAY_CHARS) -> str:
    """Return ``text`` as one line to show: whitespace runs (newlines too) as one space, every other control or
    bidi-control character as U+FFFD, and cut to ``limit`` characters with "…" (``None``: no limit)."""
    line = _SPACE.sub(" ", text).strip()
    if not line.isprintable():
        line = "".join(REPLACEMENT if _unsafe(char) else char for char in line)
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 1, 0)].rstrip() + "…"
    return line
