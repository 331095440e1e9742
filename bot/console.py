"""The interactive console: a prompt with line editing and history over :func:`index.answer.answer`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bot.render import render_answer, render_passages
from index.answer import answer
from index.errors import CitebotError
from index.retrieve import Searcher

HELP = """\
Type a question and press Enter; citebot quotes the passage that answers it, and names its article.
Commands:
  help, /help          this text
  more, /more          the next passages for the last question
  articles, /articles  the articles you can ask about, with their ids
  use ID... | use all  ask only these articles (ids from 'articles'), or the whole library again
  source, /source      what is being searched
  quit, /quit          leave (Ctrl-D works too)"""

COMMANDS = ("help", "more", "articles", "use", "source", "quit", "exit")


def _enable_history(path: Path) -> Callable[[], None]:
    """Turn on readline line editing with history in ``path``; return a function that saves it."""
    try:
        import readline
    except ImportError:  # not on every platform; input() still works
        return lambda: None
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)

    def save() -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)

    return save


def describe(searcher: Searcher, scope: list[int] | None) -> str:
    """Return one line naming what is searched: one article (with its size) or how many of the library."""
    records = searcher.library.records(scope)
    if len(records) == 1:
        r = records[0]
        return f"“{r.label}”: {r.paragraphs} paragraphs, {r.words} words"
    total = len(searcher.library.records())
    if scope is None:
        return f"the library: {total} articles"
    return f"{len(records)} of the library's {total} articles"


def _prompt(scope: list[int] | None) -> str:
    return "? " if scope is None else f"[{' '.join(map(str, scope))}] ? "


def _articles(searcher: Searcher, scope: list[int] | None) -> str:
    lines = []
    for r in searcher.library.records():
        mark = "*" if scope is None or r.id in scope else " "
        date = f" · {r.date}" if r.date else ""
        lines.append(f"{mark} [{r.id}] {r.label}{date} ({r.paragraphs} paragraphs)")
    return "\n".join(lines) or "The library is empty."


def _use(searcher: Searcher, words: list[str]) -> list[int] | None:
    """Return the scope that ``use`` words ask for (``None``: all). Raises CitebotError for unknown ids."""
    if not words or words == ["all"]:
        return None
    ids = []
    for word in words:
        try:
            ids.append(int(word.lstrip("#")))
        except ValueError:
            raise CitebotError(f"use takes article ids (see 'articles') or 'all', not {word!r}") from None
    return [r.id for r in searcher.library.resolve(ids)]


def run_console(
    searcher: Searcher,
    top_k: int,
    min_score: float,
    console: Console,
    history: Path | None = None,
    read: Callable[[str], str] = input,
    scope: list[int] | None = None,
) -> int:
    """Run the prompt until ``quit`` or end of input; return the exit code (0)."""
    save_history = _enable_history(history) if history else (lambda: None)
    console.print(f"citebot: answering from {describe(searcher, scope)}.", highlight=False)
    console.print("Ask a question, 'help' for commands, 'quit' to leave.", style="dim")
    last_question: str | None = None
    shown = 0
    try:
        while True:
            try:
                line = read(_prompt(scope)).strip()
            except EOFError:
                console.print()
                return 0
            if not line:
                continue
            first = line.split()[0].lstrip("/").lower()
            word = first if line.startswith("/") or first in COMMANDS else None
            if word in ("quit", "exit"):
                return 0
            if word == "help":
                console.print(HELP, highlight=False)
                continue
            if word == "articles":
                console.print(_articles(searcher, scope), highlight=False, markup=False)
                continue
            if word == "use":
                try:
                    scope = _use(searcher, line.split()[1:])
                except CitebotError as exc:
                    console.print(str(exc), style="red", highlight=False, markup=False)
                    continue
                last_question = None
                console.print(f"Now asking {describe(searcher, scope)}.", highlight=False)
                continue
            if word == "source":
                where = searcher.library.directory or "memory"
                console.print(f"{describe(searcher, scope)}; library in {where}", highlight=False, markup=False)
                continue
            if word == "more":
                if last_question is None:
                    console.print("Ask a question first.", style="dim")
                    continue
                result = answer(searcher, last_question, k=min(shown + top_k, 20), min_score=min_score, scope=scope)
                fresh = result.passages[shown:]
                if not fresh:
                    console.print("No more passages.", style="dim")
                    continue
                shown += len(fresh)
                console.print(render_passages(fresh))
                continue
            if word is not None:
                console.print(
                    f"Unknown command {line!r}; commands: /help, /more, /articles, /use, /source, /quit",
                    style="red",
                    highlight=False,
                    markup=False,
                )
                continue
            try:
                result = answer(searcher, line, k=top_k, min_score=min_score, scope=scope)
            except CitebotError as exc:
                console.print(str(exc), style="red")
                continue
            last_question, shown = result.question, len(result.passages)
            console.print(render_answer(result))
    except KeyboardInterrupt:
        console.print()
        return 0
    finally:
        save_history()
