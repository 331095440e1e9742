"""Cleaning: from raw article text to the story's paragraphs.

The cleaned text is what citebot quotes from, so everything here decides what
a quote can contain: Unicode is normalised, hard line breaks inside a sentence
are joined, and the furniture of a news page (repeated title, reading time,
photo captions, "Comment:" links, social footers, tags) is dropped.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

#: Bumped whenever cleaning changes what text comes out, so stored indexes of
#: the old text are rebuilt.
CLEANER_VERSION = 2

_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")
_TERMINAL = ".!?…:;\"'”’)]»"

_READING_TIME = re.compile(r"^\d+\s*(?:min|mins|minute|minutes)\s+read$", re.IGNORECASE)
_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_DATE_LINE = re.compile(
    rf"^(?:\w+day,?\s+)?(?:\d{{1,2}}\s+(?:{_MONTHS})\.?,?\s+\d{{4}}"
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})$",
    re.IGNORECASE,
)
_CAPTION = re.compile(r"^[^\[\]]{10,}\s\[(?:[A-Z][\w .&/-]{1,40})\]$")
_LINK_LINE = re.compile(
    r"^(?:Comment|Read more|Read also|Also read|Related|Opinion|Analysis|Watch|Listen|"
    r"Subscribe|Sign up|Advertisement|Share this article|Click here)\b\s*[:|-]?",
    re.IGNORECASE,
)
_SOCIAL = re.compile(r"^(?:follow|like|join)\s+us\s+on\b|\bstay connected\s*$", re.IGNORECASE)
_TAGS = re.compile(r"^(?:tags|topics|filed under)\b\s*:?", re.IGNORECASE)
_SHARE = re.compile(r"^(?:share|tweet|email|print)(?:\s*[|/]\s*\w+)*$", re.IGNORECASE)


@dataclass(frozen=True)
class CleanedText:
    """The story as paragraphs, with the page furniture that was taken out of it."""

    title: str
    date: str | None
    paragraphs: tuple[str, ...]


def normalize(text: str) -> str:
    """Return ``text`` in NFC with one kind of newline, plain spaces, no invisible or control characters."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _INVISIBLE.sub("", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn"))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(lines)


def _ends_sentence(line: str) -> bool:
    return line.endswith(tuple(_TERMINAL))


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` carries on the sentence that ``previous`` left open.

    It does when ``previous`` ends mid-sentence and ``line`` starts in lower
    case or with a closing mark, or with a digit after a line of running text
    (``"in\n2019"``, the subscript in ``"O\n2"``), not after a headline.
    """
    if _ends_sentence(previous):
        return False
    first = line[0]
    return first.islower() or first in ",;:)]}%" or (first.isdigit() and len(previous) >= 60)


def _is_furniture(line: str) -> bool:
    return bool(
        _READING_TIME.match(line)
        or _CAPTION.match(line)
        or _LINK_LINE.match(line)
        or _SOCIAL.search(line)
        or _SHARE.match(line)
    )


def _join_block(lines: list[str]) -> list[str]:
    """Turn the lines of one block (no blank line inside) into paragraphs.

    A line break that falls inside a sentence (the line does not end a sentence
    and the next begins in lower case) is a hard wrap and is joined; a block
    whose lines are all long is a hard-wrapped paragraph and is joined whole;
    otherwise each line stands alone (headlines, datelines, list items).
    """
    if (
        len(lines) >= 3
        and all(len(line) >= 40 for line in lines[:-1])
        and not any(
            _ends_sentence(line) and next_line[:1].isupper() and len(line) < 60
            for line, next_line in itertools.pairwise(lines)
        )
    ):
        return [" ".join(lines)]
    out: list[str] = []
    for line in lines:
        if out and _continues(out[-1], line):
            out[-1] = out[-1] + " " + line
        elif out and out[-1].endswith("-") and line[:1].isalpha():
            out[-1] = out[-1] + line
        else:
            out.append(line)
    return out


def _is_headline(paragraph: str) -> bool:
    """A short paragraph without a closing full stop reads as a headline."""
    return len(paragraph) <= 150 and not paragraph.endswith((".", "…", ":", ";", ","))


def clean_text(raw: str) -> CleanedText:
    """Clean a plain-text article and return its title, date and story paragraphs.

    The first paragraph is taken as the title when it reads as a headline;
    it and any copies of it leave the story. Reading-time lines, a date line, photo captions ending in a
    credit such as ``[Getty]``, "Comment:"-style link lines and social
    footers are dropped, and a ``Tags`` line ends the story.
    """
    date: str | None = None
    blocks: list[list[str]] = [[]]
    for line in normalize(raw).split("\n"):
        if _TAGS.match(line):
            break
        if _DATE_LINE.match(line):
            date = date or line
            line = ""
        if not line or _is_furniture(line):
            blocks.append([])
            continue
        blocks[-1].append(line)
    paragraphs = [p for block in blocks if block for p in _join_block(block)]
    title = paragraphs[0] if len(paragraphs) > 1 and _is_headline(paragraphs[0]) else ""
    if title:
        paragraphs = [p for p in paragraphs if p.casefold() != title.casefold()]
    return CleanedText(title=title, date=date, paragraphs=tuple(paragraphs))
