"""What the bot says about itself and its library: /start, /help, the command menu, /articles, /use, /source.

Pure functions, no network and no ``telegram`` import; texts from articles are escaped.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bot.telegram.html import article_html
from index.reading.article import Article
from index.store.catalog import ArticleRecord

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

# --- examples ----------------------------------------------------------------------------------------

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


# --- commands ----------------------------------------------------------------------------------------


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
