"""Rendering answers for a terminal with rich: the quote, the answering sentence marked, its place."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from index.answer import Answer, Passage
from index.reading.display import safe_line, safe_text

#: A longer title is shortened in a passage's frame, so the site and the date still fit an 80-column terminal.
TITLE_CHARS = 48


def source_line(passage: Passage) -> str:
    """Return which article a passage is from: its title (shortened if long), with its site and date when known."""
    article = passage.article
    title = safe_line(article.label, limit=TITLE_CHARS)
    return " · ".join([title, *(safe_line(part) for part in (article.site, article.date) if part)])


def quote(passage: Passage, style: str = "bold yellow", dim: bool = False) -> Panel:
    """Return the passage as a panel: its position on top, its article below, its answering sentence in ``style``.

    Nothing from the article is parsed as markup, and its control characters are neutralised (one for one, so the
    highlight's offsets hold).
    """
    text = Text(safe_text(passage.text), style="dim" if dim else "")
    for start, end in passage.highlight:
        text.stylize(style, start, end)
    return Panel(
        text,
        title=Text(passage.position),
        title_align="left",
        subtitle=Text(source_line(passage)),
        subtitle_align="left",
        border_style="dim" if dim else "cyan",
    )


def render_answer(answer: Answer, limit: int | None = None) -> RenderableType:
    """Return the whole reply: the quoted passages; "may not answer" and the closest one; or "does not answer"."""
    passages = answer.passages[:limit] if limit else answer.passages
    if not passages:
        return Text(answer.not_found, style="bold")
    if answer.verdict == "uncertain":
        return Group(Text(answer.uncertain, style="bold"), quote(passages[0], style="bold", dim=True))
    if not answer.found:
        return Group(
            Text(answer.not_found, style="bold"),
            Text("The nearest I found:", style="dim"),
            quote(passages[0], style="bold", dim=True),
        )
    return render_passages(passages)


#: Headings of what ``more`` shows: the next passages of an answer, or more of the nearest text when there was none.
MORE_FOUND = "More passages:"
MORE_NEAREST = "More of the nearest text (not an answer):"


def render_more(passages: Sequence[Passage], found: bool) -> RenderableType:
    """Return the passages ``more`` adds, drawn as a continuation, never as a new answer."""
    heading = MORE_FOUND if found else MORE_NEAREST
    return Group(Text(heading, style="dim"), *(quote(p, style="bold", dim=True) for p in passages))


def render_passages(passages: Sequence[Passage]) -> RenderableType:
    """Return quoted passages: the first marked brightly, the others as "also relevant"."""
    parts: list[RenderableType] = [quote(passages[0])]
    if len(passages) > 1:
        parts.append(Text("Also relevant:", style="dim"))
        parts.extend(quote(p, style="bold", dim=True) for p in passages[1:])
    return Group(*parts)
