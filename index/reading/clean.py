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
from collections.abc import Sequence
from dataclasses import dataclass

#: Bumped whenever cleaning changes what text comes out, so stored indexes of
#: the old text are rebuilt.
CLEANER_VERSION = 3

_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200d\u2060\ufeff]")
_TERMINAL = ".!?…:;\"'”’)]»"

_READING_TIME = re.compile(r"^\d+\s*(?:min|mins|minute|minutes)\s+read$", re.IGNORECASE)
#: Month names and abbreviations, as a regex alternation (match it case-insensitively).
MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_DATE_LINE = re.compile(
    rf"^(?:\w+day,?\s+)?(?:\d{{1,2}}\s+(?:{MONTHS})\.?,?\s+\d{{4}}"
    rf"|(?:{MONTHS})\.?\s+\d{{1,2}},?\s+\d{{4}}|\d{{4}}-\d{{2}}-\d{{2}})$",
    re.IGNORECASE,
)
_CAPTION = re.compile(r"^[^\[\]]{10,}\s\[(?:[A-Z][\w .&/-]{1,40})\]$")
_LINK_LINE = re.compile(
    r"^(?:Comment|Read more|Read also|Also read|Related|Opinion|Analysis|Watch|Listen|"
    r"Subscribe|Sign up|Advertisement|Share this article|Click here)\b\s*[:|-]?",
    re.IGNORECASE,
)
#: An advertisement's label: "Sponsored: ...", "Promoted", "Paid content | ...", "Sponsored by Acme".
_SPONSORED = re.compile(
    r"^(?:sponsored|promoted|paid (?:content|post)|partner content|advertorial)(?:\s*[:|–-]|\s*$|\s+by\s+.{1,60}$)",
    re.IGNORECASE,
)
_SOCIAL = re.compile(r"^(?:follow|like|join)\s+us\s+on\b|\bstay connected\s*$", re.IGNORECASE)
#: The label of a tag block: the label alone, or followed by a colon or a list ("Tags: Syria, Turkey").
_TAGS = re.compile(r"^(?:tags|topics|filed under)(?:\s*:.*|\s*)$", re.IGNORECASE)
_TAG_LIST = re.compile(r"^(?:tags|topics|filed under)\s+[^.!?]{1,150}(?:[,|·•/][^.!?]{1,150})+$", re.IGNORECASE)
_SHARE = re.compile(r"^(?:share|tweet|email|print)(?:\s*[|/]\s*\w+)*$", re.IGNORECASE)


@dataclass(frozen=True)
class CleanedText:
    """The story as paragraphs, with the page furniture that was taken out of it."""

    title: str
    date: str | None
    paragraphs: tuple[str, ...]
    #: For :func:`clean_blocks`: the index of the input block each paragraph came from.
    origins: tuple[int, ...] = ()


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
        or _SPONSORED.match(line)
        or _SOCIAL.search(line)
        or _SHARE.match(line)
    )


def _sentence_break(line: str, next_line: str) -> bool:
    """Whether the break between ``line`` and ``next_line`` falls where one sentence ends and another starts."""
    return _ends_sentence(line) and (next_line[:1].isupper() or next_line[:1] in "\"'“‘«(" or next_line[:1].isdigit())


def _one_paragraph_per_line(lines: list[str]) -> bool:
    """Whether a block's lines are paragraphs written one per line (most breaks end a sentence).

    In hard-wrapped text a line ends where the width runs out, so few breaks
    fall exactly at a sentence's end; in text written one paragraph per line
    (no blank lines between them) nearly all do.
    """
    pairs = list(itertools.pairwise(lines))
    return len(pairs) >= 2 and sum(_sentence_break(a, b) for a, b in pairs) >= 0.75 * len(pairs)


def _join_block(lines: list[str]) -> list[str]:
    """Turn the lines of one block (no blank line inside) into paragraphs.

    A line break that falls inside a sentence (the line does not end a sentence
    and the next begins in lower case) is a hard wrap and is joined; a block
    whose lines are all long is a hard-wrapped paragraph and is joined whole,
    unless nearly every line ends a sentence (one paragraph per line); otherwise
    each line stands alone (headlines, datelines, list items).
    """
    if (
        len(lines) >= 3
        and all(len(line) >= 40 for line in lines[:-1])
        and not any(
            _ends_sentence(line) and next_line[:1].isupper() and len(line) < 60
            for line, next_line in itertools.pairwise(lines)
        )
        and not _one_paragraph_per_line(lines)
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


def _is_tag_item(line: str) -> bool:
    """Whether ``line`` can belong to a tag block: empty, furniture, or a short label without a full stop."""
    return not line or _is_furniture(line) or (len(line) <= 80 and not line.endswith((".", "!", "?", "…")))


def tag_block_start(lines: Sequence[str]) -> int:
    """Return where a trailing tag block ("Tags", "Topics: a, b", "Filed under") starts, or ``len(lines)``.

    Only a block at the very end counts: a "Tags"-style label followed to the
    end by short labels. A label followed by prose (a sentence) starts nothing,
    so a paragraph such as "Topics discussed at the summit..." is kept.
    """
    start = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if _TAGS.match(line) or _TAG_LIST.match(line):
            start = i
        elif not _is_tag_item(line):
            break
    return start


def _title_and_story(paragraphs: list[str]) -> tuple[str, list[str]]:
    """Take the title (the first paragraph when it reads as a headline) and its copies out of the story."""
    title = paragraphs[0] if len(paragraphs) > 1 and _is_headline(paragraphs[0]) else ""
    if title:
        paragraphs = [p for p in paragraphs if p.casefold() != title.casefold()]
    return title, paragraphs


def clean_text(raw: str) -> CleanedText:
    """Clean a plain-text article and return its title, date and story paragraphs.

    The first paragraph is taken as the title when it reads as a headline;
    it and any copies of it leave the story. Reading-time lines, a date line, photo captions ending in a
    credit such as ``[Getty]``, "Comment:"-style link lines, sponsored labels and social
    footers are dropped, and so is a trailing tag block.
    """
    date: str | None = None
    lines = normalize(raw).split("\n")
    blocks: list[list[str]] = [[]]
    for line in lines[: tag_block_start(lines)]:
        if _DATE_LINE.match(line):
            date = date or line
            line = ""
        if not line or _is_furniture(line):
            blocks.append([])
            continue
        blocks[-1].append(line)
    paragraphs = [p for block in blocks if block for p in _join_block(block)]
    title, paragraphs = _title_and_story(paragraphs)
    return CleanedText(title=title, date=date, paragraphs=tuple(paragraphs))


def clean_blocks(blocks: Sequence[str], title: str = "", date: str | None = None) -> CleanedText:
    """Clean blocks that a document's structure separated (HTML, Markdown, PDF) and return the story.

    Each block is one paragraph whatever line breaks it holds; furniture, a date
    line and a trailing tag block are dropped as in :func:`clean_text`. ``title``
    (from the document's metadata) leaves the story; without one, a first block
    that reads as a headline is the title. ``origins`` says which block each
    paragraph came from (a PDF keeps its page numbers through it).
    """
    numbered = [(i, " ".join(normalize(block).split())) for i, block in enumerate(blocks)]
    numbered = [(i, p) for i, p in numbered if p]
    numbered = numbered[: tag_block_start([p for _, p in numbered])]
    kept: list[tuple[int, str]] = []
    for i, paragraph in numbered:
        if _DATE_LINE.match(paragraph):
            date = date or paragraph
        elif not _is_furniture(paragraph):
            kept.append((i, paragraph))
    title = " ".join(normalize(title).split())
    if not title and len(kept) > 1 and _is_headline(kept[0][1]):
        title = kept[0][1]
    if title:
        kept = [(i, p) for i, p in kept if p.casefold() != title.casefold()]
    return CleanedText(title=title, date=date, paragraphs=tuple(p for _, p in kept), origins=tuple(i for i, _ in kept))
