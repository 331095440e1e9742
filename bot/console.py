"""The interactive console: a prompt with line editing and history over :func:`index.answer.answer`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bot.render import render_answer, render_more
from index.answer import MAX_K, Answer, answer
from index.errors import CitebotError
from index.retrieve import Retriever

HELP = """\
Type a question about the article and press Enter; citebot quotes the passage that answers it.
Commands:
  help, /help      this text
  more, /more      the next passages for the last question
  source, /source  what article is loaded
  quit, /quit      leave (Ctrl-D works too)"""

COMMANDS = ("help", "more", "source", "quit", "exit")


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


def describe(retriever: Retriever) -> str:
    """Return one line naming the loaded article and its size."""
    article = retriever.index.article
    return f"“{article.label}”: {len(article.paragraphs)} paragraphs, {len(article.text.split())} words"


@dataclass
class _Last:
    """The last question answered, and how many of its passages the user has seen."""

    answer: Answer
    shown: int


def run_console(
    retriever: Retriever,
    top_k: int,
    min_score: float,
    console: Console,
    history: Path | None = None,
    read: Callable[[str], str] = input,
) -> int:
    """Run the prompt until ``quit`` or end of input (Ctrl-D); return the exit code (0).

    Ctrl-C cancels the line being typed or the answer being worked out, and returns to the prompt.
    """
    save_history = _enable_history(history) if history else (lambda: None)
    console.print(f"citebot: answering from {describe(retriever)}.")
    console.print("Ask a question, 'help' for commands, 'quit' to leave.", style="dim")
    last: _Last | None = None
    try:
        while True:
            try:
                line = read("? ").strip()
            except EOFError:
                console.print()
                return 0
            except KeyboardInterrupt:
                console.print()  # the line typed so far is dropped; a fresh prompt follows
                continue
            if not line:
                continue
            word = line.lstrip("/").lower() if line.startswith("/") or line.lower() in COMMANDS else None
            if word in ("quit", "exit"):
                return 0
            try:
                last = _respond(retriever, line, word, last, top_k, min_score, console)
            except KeyboardInterrupt:
                console.print("(cancelled)", style="dim")
    finally:
        save_history()


def _respond(
    retriever: Retriever,
    line: str,
    word: str | None,
    last: _Last | None,
    top_k: int,
    min_score: float,
    console: Console,
) -> _Last | None:
    """Answer one line typed at the prompt (a command or a question); return the new last question."""
    if word == "help":
        console.print(HELP, highlight=False)
    elif word == "source":
        console.print(f"{describe(retriever)}; from {retriever.index.article.source}", highlight=False, soft_wrap=True)
    elif word == "more":
        if last is None:
            console.print("Ask a question first.", style="dim")
            return last
        k = min(last.shown + top_k, MAX_K)
        fresh = answer(retriever, last.answer.question, k=k, min_score=min_score).passages[last.shown :]
        if not fresh:
            console.print("No more passages.", style="dim")
            return last
        console.print(render_more(fresh, found=last.answer.found))
        return _Last(last.answer, last.shown + len(fresh))
    elif word is not None:
        console.print(f"Unknown command {line!r}; commands: /help, /more, /source, /quit", style="red")
    else:
        try:
            result = answer(retriever, line, k=top_k, min_score=min_score)
        except CitebotError as exc:
            console.print(str(exc), style="red")
            return last
        console.print(render_answer(result))
        return _Last(result, shown=len(result.passages) if result.found else min(1, len(result.passages)))
    return last
