"""Telegram HTML for answers and passages, and the text of incoming messages (questions, entities).

Pure functions, no network and no ``telegram`` import: every text that comes
from the article or the user is escaped with :func:`html.escape`, so a reply
never fails with "can't parse entities".
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from bot.telegram.split import MAX_MESSAGE, split_html, utf16_len
from index.answer import NOT_FOUND, ArticleRef, Passage, context_range
from index.reading.article import Article
from index.reading.fetch import is_web_url
from index.store.catalog import ArticleRecord

#: Said before the nearest passage when the articles searched do not answer.
NEAREST = "The nearest I found:"

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
    if is_web_url(url):
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
    for number in context_range(paragraph, total):
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
