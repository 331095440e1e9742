"""Untrusted text on screen: an article's title or a URL is never read as rich markup, never reorders or hides what
follows it (bidi overrides, control characters), and is shown bounded, in ``add``, ``list`` and the console."""

from __future__ import annotations

from pathlib import Path

from index.reading.display import DISPLAY_CHARS, REPLACEMENT, safe_line, safe_text

RLO = "\u202e"
BODY = "The bakery on Mill Street opened in 1952.\n\nIts rye bread sells out by nine every morning.\n"


def _article(tmp_path: Path, name: str, title: str) -> str:
    (tmp_path / name).write_text(f"# {title}\n\n{BODY}", encoding="utf-8")
    return name


def test_safe_line_neutralises_controls_and_bidi_and_bounds_the_line() -> None:
    shown = safe_line("Harmless title \u202egnp.exe\x1b[2J\r\nnext\u2066x\u2069")
    assert RLO not in shown and "\x1b" not in shown and "\r" not in shown and "\n" not in shown
    assert "\u2066" not in shown and "\u2069" not in shown
    assert shown.startswith(f"Harmless title {REPLACEMENT}gnp.exe{REPLACEMENT}[2J next")
    long = safe_line("word " * 1000)
    assert len(long) == DISPLAY_CHARS and long.endswith("…")
    assert safe_line("Ünïcödé — “quoted” 東京") == "Ünïcödé — “quoted” 東京"  # ordinary text untouched
    passage = "line one\u202e\nline two\x07\tend"
    assert safe_text(passage) == f"line one{REPLACEMENT}\nline two{REPLACEMENT}\tend"  # same length: offsets hold


def test_a_title_with_rich_markup_is_printed_as_it_is_by_add_list_and_the_console(run_citebot, tmp_path: Path) -> None:
    title = "Notes [/] on [bold red]markup[/bold red] and [link=http://x]links[/link]"
    added = run_citebot("add", _article(tmp_path, "markup.md", title))
    assert added.returncode == 0, added.stderr
    assert "Traceback" not in added.stderr
    assert f"added [2] {title} (" in added.stdout
    for _ in range(2):  # every later list too
        listed = run_citebot("list", env={"COLUMNS": "200"})
        assert listed.returncode == 0, listed.stderr
        assert title in listed.stdout
    console = run_citebot("console", input="articles\nuse 2\nWhen did the bakery open?\nquit\n")
    assert console.returncode == 0, console.stderr
    assert f"[2] {title}" in console.stdout and f"Now asking “{title}”" in console.stdout
    assert "1952" in console.stdout


def test_a_bidi_override_and_a_huge_title_are_neutralised_and_bounded(run_citebot, tmp_path: Path) -> None:
    title = f"Harmless title {RLO}gnp.exe " + "padding " * 700  # over 5,000 characters
    added = run_citebot("add", _article(tmp_path, "bidi.md", title))
    assert added.returncode == 0, added.stderr
    (line,) = added.stdout.splitlines()
    assert line.startswith(f"added [2] Harmless title {REPLACEMENT}gnp.exe padding") and len(line) < 400
    listed = run_citebot("list", env={"COLUMNS": "200"})
    console = run_citebot("console", input="articles\nuse 2\nWhen did the bakery open?\nquit\n")
    for shown in (added.stdout, listed.stdout, console.stdout):
        assert RLO not in shown and f"{REPLACEMENT}gnp.exe" in shown
        assert "padding " * 60 not in shown  # bounded, never the whole title
    assert "1952" in console.stdout
