"""Telegram formatting: answers as Telegram HTML, split to fit a message, and stateless button data.

Pure functions, no network and no ``telegram`` import: every text that comes
from the article or the user is escaped with :func:`html.escape`, so a reply
never fails with "can't parse entities", and :func:`split_html` cuts long
replies on paragraph or sentence boundaries, never inside a tag or an entity.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from index.answer import MAX_K, NOT_FOUND, ArticleRef, Passage
from index.reading.article import Article
from index.store.catalog import ArticleRecord

#: Telegram's limit on the text of one message.
MAX_MESSAGE = 4096
#: Telegram's limit on a button's callback data, in bytes.
MAX_CALLBACK_DATA = 64
#: How many hex digits of the article's fingerprint a button carries.
FINGERPRINT_DIGITS = 8

#: Said before the nearest passage when the articles searched do not answer.
NEAREST = "The nearest I found:"
#: Articles listed per page of /articles.
ARTICLES_PER_PAGE = 8

#: (command, description) for the bot's command menu.
COMMANDS = (
    ("start", "what this bot does, with example questions"),
    ("help", "how to ask, and the commands"),
    ("articles", "the articles I answer from; tap one to ask only it"),
    ("use", "which articles this chat asks: /use ID, /use all"),
    ("ask", "ask a question (the way to ask in groups)"),
)

# --- answers -----------------------------------------------------------------------------------------


def quote_html(text: str, highlight: Sequence[tuple[int, int]] = ()) -> str:
    """Return ``text`` escaped in a ``<blockquote>``, the ``highlight`` spans in bold."""
    out: list[str] = []
    at = 0
    for start, end in sorted(highlight):
        start, end = max(start, at), min(end, len(text))
        if start >= end:
            continue
        out.append(html.escape(text[at:start]))
        out.append(f"<b>{html.escape(text[start:end])}</b>")
        at = end
    out.append(html.escape(text[at:]))
    return f"<blockquote>{''.join(out)}</blockquote>"


def article_html(article: ArticleRef | ArticleRecord) -> str:
    """Return an article's name for a message: its title (a link when it has a web address) and its date."""
    name = f"“{html.escape(article.label)}”"
    url = article.url or ""
    if url.startswith(("https://", "http://")):
        name = f'<a href="{html.escape(url, quote=True)}">{name}</a>'
    return f"{name} ({html.escape(article.date)})" if article.date else name


def place_html(passage: Passage, rank: int = 0) -> str:
    """Return the line under a quote: its article, then its position (``paragraph 4 of 21``, a page for a PDF)."""
    note = f" · match {rank + 1}" if rank else ""
    return f"{article_html(passage.article)}, <i>{passage.position}{note}</i>"


def passage_html(passage: Passage, rank: int = 0) -> str:
    """Return one passage: the quote with its answering sentence in bold, then its article and position."""
    return f"{quote_html(passage.text, passage.highlight)}\n{place_html(passage, rank)}"


def uncertain_html(passage: Passage, line: str) -> str:
    """Return the reply when the articles may not answer: ``line`` ("... may not answer this; the closest ...") and
    the passage, quoted as the closest text, not as an answer."""
    return f"{html.escape(line)}\n{passage_html(passage)}"


def answer_html(passage: Passage | None, found: bool, rank: int = 0, not_found: str = NOT_FOUND) -> str:
    """Return the reply for a question: the passage at ``rank``, or the ``not_found`` line.

    When the articles do not answer, the passage (if any) is shown as the nearest text found.
    """
    if passage is None:
        return html.escape(not_found)
    if found:
        return passage_html(passage, rank)
    return f"{html.escape(not_found)} {html.escape(NEAREST)}\n{passage_html(passage, rank)}"


def context_html(article: Article, paragraph: int, highlight: Sequence[tuple[int, int]] = ()) -> str:
    """Return paragraph ``paragraph`` (1-based) with its neighbours before and after, each quoted and placed."""
    total = len(article.paragraphs)
    groups = []
    for number in range(max(1, paragraph - 1), min(total, paragraph + 1) + 1):
        marks = highlight if number == paragraph else ()
        groups.append(f"{quote_html(article.paragraph(number - 1), marks)}\n<i>paragraph {number} of {total}</i>")
    return "\n\n".join(groups)


def inline_html(passage: Passage, limit: int = MAX_MESSAGE) -> str:
    """Return a passage as one message of at most ``limit`` characters (for inline results).

    A passage too long for one message is cut to the part holding its answering sentence.
    """
    whole = passage_html(passage)
    if utf16_len(whole) <= limit:
        return whole
    place = f"\n{place_html(passage)}"
    parts = split_html(quote_html(passage.text, passage.highlight), limit - utf16_len(place))
    chosen = next((p for p in parts if "<b>" in p), parts[0])
    return chosen + place


# --- commands ----------------------------------------------------------------------------------------

_PROPER = re.compile(r"[A-Z][\w'’-]*[a-z][\w'’-]*(?:\s+[A-Z][\w'’-]*[a-z][\w'’-]*)*")
_SENTENCE_START = re.compile(r"(^|[.!?…:;\"“”'‘’(]\s*)$")
#: Single words like "Turkish", "Syrian", "Japanese" are adjectives more often than names.
_DEMONYM = re.compile(r"(ish|ian|ese|ean)$")


def example_candidates(article: Article, limit: int = 8) -> list[str]:
    """Return questions about the names the article mentions most, most mentioned first.

    Names are runs of capitalised words not at the start of a sentence; the
    caller keeps the ones the article really answers.
    """
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for number in range(len(article.paragraphs)):
        text = article.paragraph(number)
        for match in _PROPER.finditer(text):
            if _SENTENCE_START.search(text[max(0, match.start() - 3) : match.start()]):
                continue
            name = match.group(0)
            if " " not in name and _DEMONYM.search(name):
                continue
            counts[name] += 1
            first.setdefault(name, len(first))
    names = sorted(counts, key=lambda n: (-counts[n], first[n]))
    return [f"What does the article say about {name}?" for name in names[:limit]]


def greeting_html(records: Sequence[ArticleRecord], examples: Sequence[str]) -> str:
    """Return the /start text: what the bot does, which articles it answers from and example questions."""
    if len(records) == 1:
        what = f"“{html.escape(records[0].label)}”"
    else:
        what = f"the {len(records)} articles of my library (/articles lists them)"
    lines = [
        f"Hello! I answer questions about {what} by quoting it: "
        "the passage that answers, word for word, with the answering sentence in bold. I never make text up.",
    ]
    if examples:
        lines += ["", "Try asking:"] + [f"• {html.escape(q)}" for q in examples]
    lines += ["", "/help tells more."]
    return "\n".join(lines)


def help_html(username: str, admin: bool = False) -> str:
    """Return the /help text: how to ask, the buttons, the commands (and, for an admin, how to add articles)."""
    bot = f"@{html.escape(username)}" if username else "the bot"
    lines = [
        "I answer questions about the articles of my library by quoting them, never by writing text of my own. "
        "Every quote names its article. If the articles do not answer, I say so.",
        "",
        "<b>Asking</b>",
        "• In a private chat, just send the question.",
        f"• In a group, mention me ({bot} question), reply to one of my messages, or use /ask question.",
        "• Reply to one of my answers to ask a follow-up about the same article "
        "(“and who controls it?” is understood in the light of your earlier question).",
        f"• In any chat, type {bot} question to share a quote (inline mode).",
        "",
        "<b>Buttons</b>",
        "• More context: the paragraphs around the quote.",
        "• Next match: the next passage that matches the question.",
        "• Show closest passage: what came nearest when the articles do not answer.",
        "",
        "<b>Commands</b>",
        *(f"/{name}: {html.escape(text)}" for name, text in COMMANDS),
    ]
    if admin:
        lines += [
            "",
            "<b>Adding articles</b> (you are an admin)",
            "• Send me a .txt, .md, .html or .pdf file, or a message that is a web address.",
            "• /remove ID takes an article out of the library.",
        ]
    return "\n".join(lines)


def record_html(record: ArticleRecord) -> str:
    """Return one article as /articles lists it: its id, title (linked), date and size."""
    count = record.paragraphs
    size = f"{count} paragraph{'s' if count != 1 else ''}, {record.words} word{'s' if record.words != 1 else ''}"
    site = f", {html.escape(record.site)}" if record.site else ""
    return f"<b>{record.id}</b>. {article_html(record)}{site}: {size}"


def source_html(record: ArticleRecord) -> str:
    """Return the details of one article: title, date, size and where it came from."""
    lines = [f"<b>{html.escape(record.label)}</b>"]
    if record.date:
        lines.append(html.escape(record.date))
    count, words = record.paragraphs, record.words
    lines.append(f"{count} paragraph{'s' if count != 1 else ''}, {words} word{'s' if words != 1 else ''}")
    where = record.url or Path(record.source.removeprefix("bundled:")).name or record.source
    lines.append(f"From: {html.escape(where)}")
    return "\n".join(lines)


def scope_html(records: Sequence[ArticleRecord] | None, total: int) -> str:
    """Return what a chat asks: the whole library (``records`` is ``None``) or the articles named."""
    if records is None:
        return f"This chat asks the whole library ({total} article{'s' if total != 1 else ''})."
    names = ", ".join(f"{r.id} {article_html(r)}" for r in records)
    return f"This chat asks only: {names}. /use all asks the whole library again."


def articles_page(records: Sequence[ArticleRecord], page: int, scope: Sequence[int] | None) -> tuple[str, int]:
    """Return page ``page`` (0-based, clamped) of /articles as HTML, and the page shown."""
    pages = max(1, -(-len(records) // ARTICLES_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = records[page * ARTICLES_PER_PAGE : (page + 1) * ARTICLES_PER_PAGE]
    head = f"<b>The library</b> ({len(records)} article{'s' if len(records) != 1 else ''}"
    head += f", page {page + 1} of {pages})" if pages > 1 else ")"
    chosen = set(scope or ())
    lines = [head, ""]
    for record in shown:
        mark = " ✓" if record.id in chosen else ""
        lines.append(record_html(record) + mark)
    lines += ["", "Tap an article to ask only it in this chat; “All articles” asks the whole library."]
    return "\n".join(lines), page


# --- questions ---------------------------------------------------------------------------------------

_ASK = re.compile(r"^/ask(?:@\w+)?(?=\s|$)", re.IGNORECASE)


def question_text(text: str, username: str = "") -> str:
    """Return the question in a message: without a leading ``/ask`` command or mentions of the bot."""
    text = _ASK.sub("", text.strip(), count=1)
    if username:
        text = re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def entity_text(text: str, offset: int, length: int) -> str | None:
    """Return the part of ``text`` a message entity covers (``offset`` and ``length`` in UTF-16 code units),
    or ``None`` when the entity is malformed: out of range, or cutting a character's surrogate pair."""
    units = text.encode("utf-16-le")
    if offset < 0 or length <= 0 or 2 * (offset + length) > len(units):
        return None
    try:
        return units[2 * offset : 2 * (offset + length)].decode("utf-16-le")
    except UnicodeDecodeError:
        return None


# --- buttons -----------------------------------------------------------------------------------------


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


# --- splitting ---------------------------------------------------------------------------------------

_ATOM = re.compile(r"<[^>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);|.", re.DOTALL)
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9-]*)")
_EMPTY_ELEMENT = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^>]*)?>(\s*)</\1>")
_SENTENCE_END = set(".!?…")
_CLOSING_PUNCT = set("\"'”’)]»")


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the way Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class _Atom:
    raw: str
    kind: str  # "open", "close" or "text"
    name: str = ""


def _atoms(markup: str) -> list[_Atom]:
    atoms = []
    for match in _ATOM.finditer(markup):
        raw = match.group(0)
        if raw.startswith("<") and len(raw) > 1:
            name_match = _TAG_NAME.match(raw)
            name = name_match.group(1).lower() if name_match else ""
            atoms.append(_Atom(raw, "close" if raw.startswith("</") else "open", name))
        else:
            atoms.append(_Atom(raw, "text"))
    return atoms


def _priorities(atoms: list[_Atom]) -> list[int]:
    """How good a place it is to end a part before each atom: 4 a blank line, 3 a line break,
    2 a sentence end, 1 a space, 0 between two characters, -1 never (right after an opening tag)."""
    priorities = [-1] * (len(atoms) + 1)
    last_char = ""
    for j in range(1, len(atoms) + 1):
        prev = atoms[j - 1]
        if prev.kind == "open":
            priority = -1
        elif prev.raw == "\n":
            priority = 4 if j >= 2 and atoms[j - 2].raw == "\n" else 3
        elif prev.kind == "text" and prev.raw.isspace():
            priority = 2 if last_char in _SENTENCE_END else 1
        else:
            priority = 0
        priorities[j] = priority
        char = html.unescape(prev.raw) if prev.kind == "text" else ""
        if char and not char.isspace() and char not in _CLOSING_PUNCT:
            last_char = char
    return priorities


def split_html(markup: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split Telegram HTML into parts of at most ``limit`` UTF-16 code units each.

    Parts end at a blank line if one is in the second half of the room, else at
    a line break, a sentence end, a space, or (only for a word longer than a
    message) anywhere between two characters; never inside a tag or an entity.
    Tags open at a cut are closed at the end of the part and reopened at the
    start of the next one, so every part is well-formed on its own.

    Raises:
        ValueError: when the tags nest so deeply that nothing fits in ``limit``.
    """
    if utf16_len(markup) <= limit:
        return [markup] if markup.strip() else []
    atoms = _atoms(markup)
    priorities = _priorities(atoms)
    widths = [utf16_len(a.raw) for a in atoms]
    stacks: list[tuple[_Atom, ...]] = []  # open tags after each atom
    stack: list[_Atom] = []
    for atom in atoms:
        if atom.kind == "open":
            stack.append(atom)
        elif atom.kind == "close":
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth].name == atom.name:
                    del stack[depth:]
                    break
        stacks.append(tuple(stack))

    def closers(open_tags: tuple[_Atom, ...]) -> str:
        return "".join(f"</{a.name}>" for a in reversed(open_tags))

    parts: list[str] = []
    start = 0
    n = len(atoms)
    while start < n:
        while start < n and atoms[start].kind == "text" and atoms[start].raw.isspace():
            start += 1
        if start >= n:
            break
        opened = stacks[start - 1] if start else ()
        prefix = "".join(a.raw for a in opened)
        room = limit - utf16_len(prefix)
        used = 0
        fit = start
        for j in range(start, n):
            used += widths[j]
            if used + utf16_len(closers(stacks[j])) > room:
                break
            fit = j + 1
        if fit == n:
            end = n
        else:
            if fit == start:
                raise ValueError(f"cannot split the text into parts of {limit} characters: tags nest too deeply")
            half = start + (fit - start) // 2
            candidates = [j for j in range(start + 1, fit + 1) if priorities[j] >= 0]
            late = [j for j in candidates if j >= half and priorities[j] >= 1]
            spaced = [j for j in candidates if priorities[j] >= 1]
            pool = late or spaced or candidates or [fit]
            end = max(pool, key=lambda j: (priorities[j], j))
        last = end
        while last > start and atoms[last - 1].kind == "text" and atoms[last - 1].raw.isspace():
            last -= 1
        body = prefix + "".join(a.raw for a in atoms[start:last]) + closers(stacks[end - 1])
        part = _drop_empty_elements(body)
        if part.strip():
            parts.append(part)
        start = end
    return parts


def _drop_empty_elements(markup: str) -> str:
    while True:
        cleaned = _EMPTY_ELEMENT.sub(r"\2", markup)
        if cleaned == markup:
            return cleaned.strip()
        markup = cleaned
