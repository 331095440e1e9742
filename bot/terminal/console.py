"""The interactive console: a prompt with line editing and history over :func:`index.answer.answer`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bot.terminal.render import render_answer, render_more
from index.answer import MAX_K, UNCERTAIN_SCORE, Answer, answer
from index.errors import CitebotError
from index.reading.display import safe_line
from index.search.retrieve import Searcher

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
        return f"“{safe_line(r.label)}”: {r.paragraphs} paragraphs, {r.words} words"
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
        date = f" · {safe_line(r.date)}" if r.date else ""
        lines.append(f"{mark} [{r.id}] {safe_line(r.label)}{date} ({r.paragraphs} paragraphs)")
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


@dataclass
class _Last:
    """The last question answered, and how many of its passages the user has seen."""

    answer: Answer
    shown: int


@dataclass
class _State:
    """What the prompt remembers between lines: the scope, the last answer, the article file passed in."""

    searcher: Searcher
    top_k: int
    min_score: float
    scope: list[int] | None
    article: Path | None
    uncertain_score: float
    last: _Last | None = None


def run_console(
    searcher: Searcher,
    top_k: int,
    min_score: float,
    console: Console,
    history: Path | None = None,
    read: Callable[[str], str] = input,
    scope: list[int] | None = None,
    article: Path | None = None,
    uncertain_score: float = UNCERTAIN_SCORE,
) -> int:
    """Run the prompt until ``quit`` or end of input (Ctrl-D); return the exit code (0).

    Ctrl-C cancels the line being typed or the answer being worked out, and returns to the prompt.
    ``article`` is the file passed with ``--article``, if any (``source`` names it).
    """
    save_history = _enable_history(history) if history else (lambda: None)
    state = _State(searcher, top_k, min_score, scope, article, uncertain_score)
    console.print(f"citebot: answering from {describe(searcher, scope)}.", highlight=False, markup=False)
    console.print("Ask a question, 'help' for commands, 'quit' to leave.", style="dim")
    try:
        while True:
            try:
                line = read(_prompt(state.scope)).strip()
            except EOFError:
                console.print()
                return 0
            except KeyboardInterrupt:
                console.print()  # the line typed so far is dropped; a fresh prompt follows
                continue
            if not line:
                continue
            first = line.split()[0].lstrip("/").lower()
            word = first if line.startswith("/") or first in COMMANDS else None
            if word in ("quit", "exit"):
                return 0
            try:
                _respond(state, line, word, console)
            except KeyboardInterrupt:
                console.print("(cancelled)", style="dim")
    finally:
        save_history()


def _respond(state: _State, line: str, word: str | None, console: Console) -> None:
    """Answer one line typed at the prompt: a command or a question."""
    searcher = state.searcher
    if word == "help":
        console.print(HELP, highlight=False)
    elif word == "articles":
        console.print(_articles(searcher, state.scope), highlight=False, markup=False, soft_wrap=True)
    elif word == "use":
        try:
            state.scope = _use(searcher, line.split()[1:])
        except CitebotError as exc:
            console.print(safe_line(str(exc), limit=None), style="red", highlight=False, markup=False)
            return
        state.last = None
        console.print(f"Now asking {describe(searcher, state.scope)}.", highlight=False, markup=False)
    elif word == "source":
        where = f"from {state.article}" if state.article else f"from the library in {searcher.library.directory}"
        console.print(f"{describe(searcher, state.scope)}; {where}", highlight=False, markup=False, soft_wrap=True)
    elif word == "more":
        last = state.last
        if last is None:
            console.print("Ask a question first.", style="dim")
            return
        k = min(last.shown + state.top_k, MAX_K)
        more = answer(
            searcher,
            last.answer.question,
            k=k,
            min_score=state.min_score,
            scope=state.scope,
            uncertain_score=state.uncertain_score,
        )
        fresh = more.passages[last.shown :]
        if not fresh:
            console.print("No more passages.", style="dim")
            return
        console.print(render_more(fresh, found=last.answer.found))
        state.last = _Last(last.answer, last.shown + len(fresh))
    elif word is not None:
        console.print(
            f"Unknown command {line!r}; commands: /help, /more, /articles, /use, /source, /quit",
            style="red",
            highlight=False,
            markup=False,
        )
    else:
        try:
            result = answer(
                searcher,
                line,
                k=state.top_k,
                min_score=state.min_score,
                scope=state.scope,
                uncertain_score=state.uncertain_score,
            )
        except CitebotError as exc:
            console.print(safe_line(str(exc), limit=None), style="red", highlight=False, markup=False)
            return
        console.print(render_answer(result))
        shown = len(result.passages) if result.found else min(1, len(result.passages))
        state.last = _Last(result, shown)
