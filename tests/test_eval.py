"""``citebot eval``: the metric functions, the SQuAD reading and paragraph mapping, and the command on a tiny file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.errors import CitebotError
from index.evaluate import (
    ANSWERABLE,
    OFFTOPIC,
    UNANSWERABLE,
    Outcome,
    contains_answer,
    evaluate,
    hit_at,
    load_squad,
    map_paragraphs,
    offtopic_questions,
    percentile,
    reciprocal_rank,
    squad_to_article,
    summarize,
)
from index.reading.article import article_from_paragraphs
from tests.support.paths import DATA

TINY = DATA / "tiny-squad.json"


def test_reciprocal_rank_and_hits() -> None:
    assert reciprocal_rank([3, 1, 2], (3,)) == 1.0
    assert reciprocal_rank([3, 1, 2], (2,)) == pytest.approx(1 / 3)
    assert reciprocal_rank([3, 1, 2], (4,)) == 0.0
    assert reciprocal_rank([3, 1, 2], (2, 1)) == 0.5  # a split paragraph: its first piece to appear counts
    assert reciprocal_rank([3, 1, 2], ()) == 0.0
    assert hit_at([3, 1, 2], (1,), 1) is False
    assert hit_at([3, 1, 2], (1,), 2) is True
    assert hit_at([3, 1, 2], (), 3) is False


def test_contains_answer_normalises_whitespace_and_unicode_but_keeps_case() -> None:
    assert contains_answer("It was built in 1871 on the cliff.", ["1871"])
    assert contains_answer("Concentrated O\n2 burns", ["O 2"])
    assert contains_answer("caf\u0065\u0301 au lait", ["caf\u00e9"])  # NFD text, NFC answer
    assert not contains_answer("Margaret Doyle", ["margaret doyle"])
    assert not contains_answer("anything", [])
    assert not contains_answer("anything", ["", "   "])


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile(list(range(101)), 95) == 95.0


def test_summarize_counts_each_kind_on_its_own() -> None:
    outcomes = [
        Outcome(ANSWERABLE, (1, 2, 3), (1,), True, True, True, 10.0),  # right first
        Outcome(ANSWERABLE, (2, 3, 1), (1,), True, True, False, 20.0),  # right third
        Outcome(ANSWERABLE, (2, 3, 4), (1,), False, False, False, 30.0),  # missed, and not found
        Outcome(ANSWERABLE, (5, 1, 2), (1, 5), True, True, True, 40.0),  # split gold: a piece first
        Outcome(OFFTOPIC, (1, 2, 3), (), False, False, False, 50.0),
        Outcome(OFFTOPIC, (1, 2, 3), (), True, False, False, 60.0),
        Outcome(UNANSWERABLE, (1, 2, 3), (), False, False, False, 70.0),
    ]
    s = summarize(outcomes)
    assert s["questions"] == 4
    assert s["paragraph_r1"] == 0.5
    assert s["paragraph_r3"] == 0.75
    assert s["mrr"] == pytest.approx(round((1 + 1 / 3 + 0 + 1) / 4, 4))
    assert s["answer_in_quote"] == 0.75
    assert s["answer_in_highlight"] == 0.5
    assert s["answerable_found"] == 0.75
    assert s["offtopic_questions"] == 2 and s["offtopic_rejected"] == 0.5
    assert s["unanswerable_questions"] == 1 and s["unanswerable_rejected"] == 1.0
    assert s["latency_ms_p50"] == 40.0
    assert s["latency_ms_p95"] == pytest.approx(67.0)


def test_summarize_baselines_have_no_decision() -> None:
    s = summarize([Outcome(ANSWERABLE, (1,), (1,), None, True, True)])
    assert s["paragraph_r1"] == 1.0
    assert s["answerable_found"] is None and s["offtopic_rejected"] is None
    assert "latency_ms_p50" not in s and "unanswerable_rejected" not in s


def test_summarize_reports_the_verdicts_and_the_decision_before_side_by_side() -> None:
    def outcome(kind: str, verdict: str, before: bool) -> Outcome:
        return Outcome(
            kind,
            (1,),
            (1,) if kind == ANSWERABLE else (),
            verdict == "answered",
            True,
            True,
            1.0,
            verdict=verdict,
            found_before=before,
        )

    s = summarize(
        [
            outcome(ANSWERABLE, "answered", True),
            outcome(ANSWERABLE, "uncertain", True),
            outcome(OFFTOPIC, "unanswered", False),
            outcome(UNANSWERABLE, "uncertain", True),
            outcome(UNANSWERABLE, "unanswered", True),
            outcome(UNANSWERABLE, "answered", False),
        ]
    )
    assert s["answerable_found"] == 0.5 and s["answerable_found_before"] == 1.0
    assert s["answerable_uncertain"] == 0.5
    assert s["unanswerable_rejected"] == pytest.approx(0.6667) and s["unanswerable_rejected_before"] == pytest.approx(
        0.3333
    )
    assert s["unanswerable_uncertain"] == pytest.approx(0.3333)
    assert s["offtopic_rejected"] == 1.0 and s["offtopic_rejected_before"] == 1.0 and s["offtopic_uncertain"] == 0.0


def test_load_squad_reads_both_versions() -> None:
    articles = load_squad(TINY)
    assert [a.title for a in articles] == ["Harbor_Lighthouse", "Mount_Kessler"]
    assert [len(a.contexts) for a in articles] == [3, 2]
    questions = articles[0].questions
    assert [q.paragraph for q in questions] == [0, 0, 1, 1, 2, 2, 2]
    assert questions[0].answers == ("1871",)
    assert [q.impossible for q in questions].count(True) == 1


def test_load_squad_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(CitebotError, match="no such file"):
        load_squad(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(CitebotError, match="not a SQuAD JSON file"):
        load_squad(tmp_path / "other.json")


def test_paragraphs_are_mapped_by_text_when_cleaning_splits_or_merges() -> None:
    squad = load_squad(TINY)
    article = squad_to_article(squad[1])
    # The second context holds a line break before a capital: cleaning makes two paragraphs of it.
    assert len(article.paragraphs) == 3
    assert map_paragraphs(article, squad[1].contexts) == [(0,), (1, 2)]
    merged = article_from_paragraphs(["Alpha one. Beta two.", "Gamma three."])
    assert map_paragraphs(merged, ["Beta two.", "Gamma three.", "Delta four."]) == [(0,), (1,), ()]


def test_offtopic_questions_come_from_other_articles_and_are_stable() -> None:
    squad = load_squad(TINY)
    drawn = offtopic_questions(squad, 0, 3)
    assert len(drawn) == 3 and drawn == offtopic_questions(squad, 0, 3)
    assert set(drawn) <= {q.question for q in squad[1].questions}


def test_evaluate_on_the_tiny_file(embedder) -> None:
    report = evaluate(TINY, embedder=embedder, baselines=True)
    summary = report.summary()
    assert summary["articles"] == 2 and summary["unmapped_paragraphs"] == 0
    ours = summary["methods"]["citebot"]
    assert ours["questions"] == 10 and ours["offtopic_questions"] == 4 + 6  # the other article's answerable ones
    assert ours["unanswerable_questions"] == 1
    # Every answer here is easy: the right paragraph comes first; one marked sentence of ten may miss.
    assert ours["paragraph_r1"] == 1.0 and ours["mrr"] == 1.0
    assert ours["answer_in_quote"] == 1.0 and ours["answer_in_highlight"] >= 0.9
    assert ours["answerable_found"] == 1.0 and ours["offtopic_rejected"] == 1.0
    assert ours["latency_ms_p50"] > 0
    # The decision shipped before is reported beside the current one, and the "uncertain" share of each kind.
    assert ours["answerable_found_before"] == 1.0 and ours["offtopic_rejected_before"] == 1.0
    assert "unanswerable_rejected_before" in ours and "unanswerable_uncertain" in ours
    assert set(summary["methods"]) == {"citebot", "bm25", "dense", "rrf"}
    assert summary["methods"]["bm25"]["answerable_found"] is None


def test_evaluate_a_library_of_the_articles_asks_every_question_of_all_of_them(embedder) -> None:
    summary = evaluate(TINY, embedder=embedder, library=True).summary()
    ours = summary["methods"]["citebot"]
    assert ours["questions"] == 10 and ours["paragraph_r1"] == 1.0
    assert ours["article_r1"] == 1.0  # the first quote names the right article of the two


def test_eval_command_json(run_citebot) -> None:
    result = run_citebot("eval", "--squad", str(TINY), "--json", "--limit", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    ours = summary["methods"]["citebot"]
    assert ours["questions"] == 4 and ours["paragraph_r1"] == 1.0
    assert set(summary["methods"]) == {"citebot"}


def test_eval_command_table_with_baselines(run_citebot) -> None:
    result = run_citebot("eval", "--squad", str(TINY), "--baselines")
    assert result.returncode == 0, result.stderr
    for label in (
        "paragraph R@1",
        "answer in highlight",
        "off-topic rejected",
        "unanswerable rejected",
        "unanswerable rejected, decision before",
        "unanswerable uncertain",
        "latency p50",
        "bm25",
        "dense",
    ):
        assert label in result.stdout


def test_eval_command_bad_file(run_citebot, tmp_path: Path) -> None:
    result = run_citebot("eval", "--squad", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "no such file" in result.stderr
