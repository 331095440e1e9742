"""The interactive console: a prompt with line editing and history over :func:`index.answer.answer`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bot.render import render_answer, render_passages
from index.answer import answer
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


def run_console(
    retriever: Retriever,
    top_k: int,
    min_score: float,
    console: Console,
    history: Path | None = None,
    read: Callable[[str], str] = input,
) -> int:
    """Run the prompt until ``quit`` or end of input; return the exit code (0)."""
    save_history = _enable_history(history) if history else (lambda: None)
    console.print(f"citebot: answering from {describe(retriever)}.")
    console.print("Ask a question, 'help' for commands, 'quit' to leave.", style="dim")
    last_question: str | None = None
    shown = 0
    try:
        while True:
            try:
                line = read("? ").strip()
            except EOFError:
                console.print()
                return 0
            if not line:
                continue
            word = line.lstrip("/").lower() if line.startswith("/") or line.lower() in COMMANDS else None
            if word in ("quit", "exit"):
                return 0
            if word == "help":
                console.print(HELP, highlight=False)
                continue
            if word == "source":
                console.print(f"{describe(retriever)}; from {retriever.index.article.source}", highlight=False)
                continue
            if word == "more":
                if last_question is None:
                    console.print("Ask a question first.", style="dim")
                    continue
                result = answer(retriever, last_question, k=min(shown + top_k, 20), min_score=min_score)
                fresh = result.passages[shown:]
                if not fresh:
                    console.print("No more passages.", style="dim")
                    continue
                shown += len(fresh)
                console.print(render_passages(fresh))
                continue
            if word is not None:
                console.print(f"Unknown command {line!r}; commands: /help, /more, /source, /quit", style="red")
                continue
            try:
                result = answer(retriever, line, k=top_k, min_score=min_score)
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
