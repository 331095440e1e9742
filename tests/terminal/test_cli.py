"""The ``citebot`` command as a user runs it: ask, ask --json (one-shot and batch), index, console."""

from __future__ import annotations

import json
from pathlib import Path

from index.reading.ingest import read_article


def _check_contract(obj: dict, article_text: str) -> None:
    assert set(obj) == {"question", "found", "verdict", "passages"}
    assert isinstance(obj["question"], str) and isinstance(obj["found"], bool)
    assert obj["verdict"] in ("answered", "uncertain", "unanswered") and obj["found"] == (obj["verdict"] == "answered")
    for p in obj["passages"]:
        assert set(p) == {"text", "paragraph", "paragraphs", "score", "highlight", "article"}
        assert set(p["article"]) == {"id", "title", "source", "date", "url"} and isinstance(p["article"]["id"], int)
        assert isinstance(p["text"], str) and p["text"] in article_text
        assert isinstance(p["paragraph"], int) and 1 <= p["paragraph"] <= p["paragraphs"]
        assert isinstance(p["score"], float)
        for start, end in p["highlight"]:
            assert isinstance(start, int) and 0 <= start < end <= len(p["text"])


def test_ask_json_one_question(run_citebot, seed) -> None:
    result = run_citebot("ask", "Which two roads meet at Saraqeb?", "--json", "-k", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    _check_contract(obj, seed.text)
    assert obj["found"] is True and len(obj["passages"]) == 2
    top = obj["passages"][0]
    assert top["paragraph"] == 9 and top["paragraphs"] == 20
    start, end = top["highlight"][0]
    assert "the M4 and M5" in top["text"][start:end]


def test_ask_json_batch_reads_stdin_and_loads_once(run_citebot, seed) -> None:
    questions = ["When did the truce collapse?", "How do I bake sourdough bread?", "Who denied the claim?"]
    result = run_citebot("ask", "--json", input="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["question"] for o in objs] == questions
    for obj in objs:
        _check_contract(obj, seed.text)
    assert [o["found"] for o in objs] == [True, False, True]
    assert objs[0]["passages"][0]["paragraph"] == 19


def test_ask_batch_reports_a_bad_line_and_keeps_going(run_citebot) -> None:
    result = run_citebot("ask", "--json", input="x" * 2000 + "\n\nWho denied the claim?\n")
    assert result.returncode == 2
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objs) == 3  # one line out for every line in, the blank one too
    assert objs[0] == {"question": "x" * 1000, "error": "the question is too long (2000 characters; the limit is 1000)"}
    assert set(objs[1]) == {"question", "error"} and "empty" in objs[1]["error"]
    assert objs[2]["question"] == "Who denied the claim?" and objs[2]["found"] is True
    assert result.stderr.splitlines() == [
        "citebot: error: line 1: the question is too long (2000 characters; the limit is 1000)",
        "citebot: error: line 2: the question is empty; type a question about the article",
    ]


def test_ask_plain_prints_the_quote_and_its_place(run_citebot) -> None:
    result = run_citebot("ask", "How many people have been displaced?")
    assert result.returncode == 0, result.stderr
    assert "paragraph 17 of 20" in result.stdout
    assert "nearly 1 million people" in result.stdout.replace("\n", " ").replace("│", " ").replace("  ", " ")


def test_ask_offtopic_says_so_plainly(run_citebot) -> None:
    result = run_citebot("ask", "What is a good recipe for lasagna?")
    assert result.returncode == 0
    assert result.stdout.startswith("The article does not answer that.")
    assert "nearest I found" in result.stdout


def test_index_command_shows_the_new_library_with_the_bundled_article(run_citebot) -> None:
    first = run_citebot("index")
    assert first.returncode == 0, first.stderr
    assert "articles    1" in first.stdout and "paragraphs  20" in first.stdout
    assert "in a faiss exact index" in first.stdout
    listed = run_citebot("list")
    assert listed.returncode == 0 and "Turkey launches" in listed.stdout


def test_other_article_by_path(run_citebot, tmp_path: Path) -> None:
    (tmp_path / "bakery.md").write_text(
        "# Village bakery\n\nThe bakery on Mill Street opened in 1952.\n\n"
        "Its rye bread sells out by nine every morning.\n"
    )
    result = run_citebot("ask", "When does the rye bread sell out?", "--article", "bakery.md", "--json")
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    _check_contract(obj, read_article(tmp_path / "bakery.md").text)
    assert obj["passages"][0]["text"] == "Its rye bread sells out by nine every morning."
    assert obj["passages"][0]["paragraph"] == 2


def test_console_session(run_citebot) -> None:
    session = (
        "help\nWho withdrew from Nayrab?\nmore\n/source\n/frobnicate\n\n"
        "How long should I boil an egg?\nquit\nnever read\n"
    )
    result = run_citebot("console", input=session)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "answering from “Turkey launches 'limited' operation to retake Idlib towns”: 20 paragraphs" in out
    assert "Commands:" in out
    assert "paragraph 8 of 20" in out and "Russian special forces had withdrawn" in out
    assert "Unknown command '/frobnicate'" in out
    assert "The article does not answer that." in out
    assert out.count("paragraph ") >= 5  # the answer, its two runners-up, and more passages after 'more'
    assert "Traceback" not in result.stderr


def test_console_ends_on_end_of_input(run_citebot) -> None:
    result = run_citebot("console", input="Who denied the claim?\n")
    assert result.returncode == 0
    assert "Ankara has denied the claim." in result.stdout
