"""Cutting Telegram HTML that is too long for one message into messages that fit.

Pure functions, no network and no ``telegram`` import. :func:`split_html` cuts
on paragraph or sentence boundaries, never inside a tag, an entity or a
character made of several code points (an emoji ZWJ sequence, a flag, a skin
tone, an accent: grapheme clusters, as far as the standard library tells), and
closes and reopens the tags open at each cut so that every part is valid
Telegram HTML on its own.

How it works: the markup is read as a list of *atoms*, the pieces that are
never cut (a tag, an entity such as ``&amp;``, or one character as a reader
sees it: a grapheme cluster of at most :data:`MAX_CLUSTER` code points). A *boundary*
``j`` is the place before ``atoms[j]``: ``0`` is the start and ``len(atoms)``
the end. A part is the atoms between two boundaries, preceded by the tags open
at its first boundary and followed by the closing tags of those open at its last.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

#: Telegram's limit on the text of one message.
MAX_MESSAGE = 4096

_ATOM = re.compile(r"<[^>]*>|&(?:#\d+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);|.", re.DOTALL)
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9-]*)")
_EMPTY_ELEMENT = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^>]*)?>(\s*)</\1>")
_SENTENCE_END = set(".!?…")
_CLOSING_PUNCT = set("\"'”’)]»")
#: Joins the characters on either side into one emoji (a ZWJ sequence such as a family).
_ZWJ = "\u200d"
#: A character (a grapheme cluster) holds at most this many code points; past it, it may be cut (a hostile
#: pile of combining marks must still fit in messages). The longest emoji ZWJ sequences have about ten.
MAX_CLUSTER = 32

# How good a boundary is for ending a part (see _break_qualities), best last.
_NEVER = -1  # right after an opening tag (and the very start)
_ANYWHERE = 0  # between two characters, inside a word
_SPACE = 1
_SENTENCE = 2  # a space after a sentence's final punctuation
_LINE = 3  # after a line break
_PARAGRAPH = 4  # after a blank line


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the way Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


def split_html(markup: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split Telegram HTML into parts of at most ``limit`` UTF-16 code units each.

    Parts end at a blank line if one is in the second half of the room, else at
    a line break, a sentence end, a space, or (only for a word longer than a
    message) anywhere between two characters; never inside a tag, an entity or a grapheme cluster.
    Tags open at a cut are closed at the end of the part and reopened at the
    start of the next one, so every part is well-formed on its own. Whitespace
    at a cut is dropped, and so is a part that would hold nothing but whitespace.

    Raises:
        ValueError: when the tags nest so deeply that nothing fits in ``limit``.
    """
    if utf16_len(markup) <= limit:
        return [markup] if markup.strip() else []
    atoms = _Atoms(markup)
    parts: list[str] = []
    start = atoms.skip_space(0)
    while start < atoms.count:
        end = atoms.part_end(start, limit)
        part = atoms.part(start, end)
        if part:
            parts.append(part)
        start = atoms.skip_space(end)
    return parts


@dataclass(frozen=True)
class _Atom:
    """A piece of markup that is never cut: a tag (``kind`` "open" or "close", with its lower-case ``name``),
    or ``kind`` "text", one character (a grapheme cluster) or entity."""

    raw: str
    kind: str
    name: str = ""

    @property
    def is_space(self) -> bool:
        """Whether this is a whitespace character (entities such as ``&#10;`` are not)."""
        return self.kind == "text" and self.raw.isspace()


def _read_atoms(markup: str) -> list[_Atom]:
    """Return ``markup`` as atoms, in order; joined they give ``markup`` back."""
    atoms: list[_Atom] = []
    for match in _ATOM.finditer(markup):
        raw = match.group(0)
        if raw.startswith("<") and len(raw) > 1:
            name_match = _TAG_NAME.match(raw)
            name = name_match.group(1).lower() if name_match else ""
            atoms.append(_Atom(raw, "close" if raw.startswith("</") else "open", name))
        elif atoms and atoms[-1].kind == "text" and _continues(atoms[-1].raw, raw):
            atoms[-1] = _Atom(atoms[-1].raw + raw, "text")
        else:
            atoms.append(_Atom(raw, "text"))
    return atoms


def _is_regional(char: str) -> bool:
    """Return whether ``char`` is a regional indicator (two of them make a flag)."""
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _extends(char: str) -> bool:
    """Return whether ``char`` belongs to the character before it: a combining mark, a variation selector, a skin
    tone, a ZWJ, a tag character (subdivision flags) or a Hangul vowel or final consonant."""
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or char == _ZWJ
        or "\U000e0020" <= char <= "\U000e007f"
        or "\U000e0100" <= char <= "\U000e01ef"
        or "\u1160" <= char <= "\u11ff"
    )


def _continues(cluster: str, char: str) -> bool:
    """Return whether ``char`` (one character of text, not an entity) joins ``cluster``, the text atom before it,
    as one grapheme cluster: what a reader sees as one character, approximated with the standard library."""
    if len(char) != 1 or len(cluster) >= MAX_CLUSTER or cluster.startswith("&") or cluster.isspace():
        return False
    if _extends(char) or cluster.endswith(_ZWJ):
        return True
    return _is_regional(char) and _is_regional(cluster[-1]) and sum(map(_is_regional, cluster)) % 2 == 1


def _open_tags(atoms: list[_Atom]) -> list[tuple[_Atom, ...]]:
    """Return, for each boundary, the opening tags still open there, outermost first.

    A closing tag closes the innermost open tag of its name and every tag opened
    inside it; a closing tag that matches nothing open changes nothing.
    """
    stack: list[_Atom] = []
    open_at: list[tuple[_Atom, ...]] = [()]
    for atom in atoms:
        if atom.kind == "open":
            stack.append(atom)
        elif atom.kind == "close":
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth].name == atom.name:
                    del stack[depth:]
                    break
        open_at.append(tuple(stack))
    return open_at


def _break_qualities(atoms: list[_Atom]) -> list[int]:
    """Return, for each boundary, how good it is to end a part there (``_NEVER`` .. ``_PARAGRAPH``).

    The quality depends on the atom before the boundary: a line break (two in a
    row: a blank line), a space (after a sentence end: a sentence break; closing
    quotes and brackets after the full stop do not hide it), an opening tag (never:
    the part would end in an empty element), anything else (between two characters).
    """
    qualities = [_NEVER]
    last_char = ""  # the last visible character that is not a space, a closing quote or a bracket
    for j, before in enumerate(atoms):
        if before.kind == "open":
            quality = _NEVER
        elif before.raw == "\n":
            quality = _PARAGRAPH if j >= 1 and atoms[j - 1].raw == "\n" else _LINE
        elif before.is_space:
            quality = _SENTENCE if last_char in _SENTENCE_END else _SPACE
        else:
            quality = _ANYWHERE
        qualities.append(quality)
        char = html.unescape(before.raw)[:1] if before.kind == "text" else ""
        if char and not char.isspace() and char not in _CLOSING_PUNCT:
            last_char = char
    return qualities


def _closers(open_tags: tuple[_Atom, ...]) -> str:
    """Return the closing tags for ``open_tags``, innermost first."""
    return "".join(f"</{a.name}>" for a in reversed(open_tags))


class _Atoms:
    """Markup read as atoms, with what :func:`split_html` needs to know at each boundary."""

    def __init__(self, markup: str) -> None:
        self.atoms = _read_atoms(markup)
        self.count = len(self.atoms)
        self.open_at = _open_tags(self.atoms)
        self.quality = _break_qualities(self.atoms)
        self.widths = [utf16_len(a.raw) for a in self.atoms]

    def skip_space(self, j: int) -> int:
        """Return the first boundary from ``j`` on that is not followed by a whitespace atom."""
        while j < self.count and self.atoms[j].is_space:
            j += 1
        return j

    def reopeners(self, j: int) -> str:
        """Return the opening tags a part starting at boundary ``j`` begins with."""
        return "".join(a.raw for a in self.open_at[j])

    def fit(self, start: int, limit: int) -> int:
        """Return the last boundary a part from ``start`` may end at: with its reopened and closing tags,
        the part fits in ``limit``, and so do all shorter ones (``start`` itself when not one atom fits)."""
        room = limit - utf16_len(self.reopeners(start))
        used = 0
        fit = start
        for j in range(start, self.count):
            used += self.widths[j]
            if used + utf16_len(_closers(self.open_at[j + 1])) > room:
                break
            fit = j + 1
        return fit

    def part_end(self, start: int, limit: int) -> int:
        """Return the boundary where the part starting at ``start`` ends.

        The end of the markup if the rest fits; else, of the boundaries up to :meth:`fit`, the best one at a space
        or better in the second half of the room (the latest of equals), else the best such one in the first half,
        else the last one between two characters, else (all of them just after opening tags) the last one.
        """
        fit = self.fit(start, limit)
        if fit == self.count:
            return fit
        if fit == start:
            raise ValueError(f"cannot split the text into parts of {limit} characters: tags nest too deeply")
        allowed = [j for j in range(start + 1, fit + 1) if self.quality[j] >= _ANYWHERE]
        at_spaces = [j for j in allowed if self.quality[j] >= _SPACE]
        half = start + (fit - start) // 2
        late = [j for j in at_spaces if j >= half]
        pool = late or at_spaces or allowed or [fit]
        return max(pool, key=lambda j: (self.quality[j], j))

    def part(self, start: int, end: int) -> str:
        """Return the part from boundary ``start`` to ``end``: its reopened tags, its atoms without trailing
        whitespace and its closing tags, elements left empty dropped; ``""`` when nothing visible remains."""
        last = end
        while last > start and self.atoms[last - 1].is_space:
            last -= 1
        body = "".join(a.raw for a in self.atoms[start:last])
        markup = _drop_empty_elements(self.reopeners(start) + body + _closers(self.open_at[end]))
        return markup if markup.strip() else ""


def _drop_empty_elements(markup: str) -> str:
    """Return ``markup`` stripped, with every element that holds only whitespace replaced by that whitespace."""
    while True:
        cleaned = _EMPTY_ELEMENT.sub(r"\2", markup)
        if cleaned == markup:
            return cleaned.strip()
        markup = cleaned
