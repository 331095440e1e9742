"""Bad articles and questions fail with one clear line, in the library and at the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.answer import answer
from index.errors import ArticleError, QuestionError
from index.reading import ingest
from index.reading.ingest import read_article


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.txt", b"", "no text"),
        ("blank.txt", b"  \n\n\t \r\n", "no text"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
        ("latin1.txt", "Caf\u00e9 au lait in Paris.".encode("latin-1"), "not UTF-8"),
        ("controls.txt", bytes([1, 2, 3, 4, 5, 6, 7, 8]) * 20 + b"text", "binary"),
    ],
)
def test_unreadable_articles_raise_one_line_errors(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    with pytest.raises(ArticleError, match=message) as info:
        read_article(_write(tmp_path, name, data))
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match="no such file"):
        read_article(tmp_path / "nope.txt")
    with pytest.raises(ArticleError, match="is a directory"):
        read_article(tmp_path)


def test_too_large_article_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_ARTICLE_BYTES", 100)
    with pytest.raises(ArticleError, match="too large"):
        read_article(_write(tmp_path, "big.txt", b"Words here. " * 20))


def test_utf16_with_bom_and_utf8_bom_are_read(tmp_path: Path) -> None:
    text = "Héllo wörld. The river rose."
    assert read_article(_write(tmp_path, "a.txt", text.encode("utf-16"))).text == text
    assert read_article(_write(tmp_path, "b.txt", b"\xef\xbb\xbf" + text.encode())).text == text


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\u200b"])
def test_empty_questions_are_refused(seed_searcher, question: str) -> None:
    with pytest.raises(QuestionError, match="empty"):
        answer(seed_searcher, question)


def test_overlong_question_is_refused(seed_searcher) -> None:
    with pytest.raises(QuestionError, match="too long"):
        answer(seed_searcher, "why " * 400)


@pytest.mark.parametrize("question", ["???", "🙂🙂", "\u202e\u0645\u0631\u062d\u0628\u0627", "<b>&amp;</b>"])
def test_odd_questions_get_an_answer_not_an_error(seed_searcher, question: str) -> None:
    result = answer(seed_searcher, question)
    assert result.found is False
    assert result.passages


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({}, ["ask", "Who?", "--article", "missing.txt"], "no such file"),
        ({"empty.txt": b""}, ["ask", "Who?", "--article", "empty.txt"], "no text"),
        ({"blank.txt": b" \n \n"}, ["index", "--article", "blank.txt"], "no text"),
        ({"bin.dat": b"\x00\x01\x02binary"}, ["ask", "Who?", "--article", "bin.dat"], "binary"),
        ({"l1.txt": "caf\u00e9".encode("latin-1")}, ["console", "--article", "l1.txt"], "not UTF-8"),
        ({}, ["ask", "   "], "question is empty"),
        ({}, ["ask"], "needs a QUESTION"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(run_citebot, tmp_path: Path, files, args, message) -> None:
    for name, data in files.items():
        _write(tmp_path, name, data)
    result = run_citebot(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("citebot: error:") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_bad_setting_exits_2(run_citebot) -> None:
    result = run_citebot("ask", "Who?", env={"CITEBOT_TOP_K": "many"})
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "citebot: error: CITEBOT_TOP_K='many' is not valid: expected a whole number from 1 to 20"
    )


def test_cli_unknown_subcommand_is_a_usage_error(run_citebot) -> None:
    result = run_citebot("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr
