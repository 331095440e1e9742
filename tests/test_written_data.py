"""The hand-written training questions (``benchmarks/written_questions/``) are data: checked, checksummed, and apart
from what measures citebot (the bundled article and the questions ``benchmarks/seed.py`` asks)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from benchmarks import written
from tests.support.paths import BENCHMARKS


def _strings(value: object) -> list[str]:
    """Return every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_every_item_is_well_formed_and_the_card_states_the_files_checksum() -> None:
    items = written.load()
    assert items
    assert written.problems(items) == []
    assert written.card_checksum() == written.checksum()


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    item = written.load()[0]
    bad = [
        dataclasses.replace(item, paragraph=10_000),
        dataclasses.replace(item, kind="rude"),
        dataclasses.replace(item, answerable=True, kind="paraphrase", sentence="not a piece of any paragraph at all"),
        dataclasses.replace(item, question="no question mark"),
    ]
    assert [len(written.problems([b])) for b in bad] == [1] * len(bad)  # each caught, alone
    assert len(written.problems([item, item])) == 1  # asked twice
    (tmp_path / "broken.jsonl").write_text('{"article": "Oxygen"}\n')
    try:
        written.load(tmp_path / "broken.jsonl")
    except ValueError as exc:
        assert "line 1" in str(exc)
    else:
        raise AssertionError("a line that is not an item was loaded")


def test_nothing_is_written_about_what_measures_citebot() -> None:
    """No item is over the bundled article, and no question is one the seed sets ask."""
    asked = {
        " ".join(s.lower().split())
        for path in BENCHMARKS.glob("seed_*.json")
        for s in _strings(json.loads(path.read_text()))
    }
    items = written.load()
    assert not [i.question for i in items if " ".join(i.question.lower().split()) in asked]
    assert not [i for i in items if "idlib" in (i.article + i.question).lower()]


def test_every_item_kept_agrees_with_its_independent_second_reading() -> None:
    """An item is kept only when a second reader, seeing the paragraph and the question alone, judged it alike."""
    paragraphs = written.contexts()
    readings = written.load_readings()
    items = written.load()
    for item in items:
        reading = readings[(item.article, item.paragraph, item.question)]
        assert written.agrees(item, reading, paragraphs[item.article][item.paragraph]), item.question
    assert len(readings) >= len(items)  # the readings also hold the items dropped


def test_agreement_needs_the_same_verdict_and_the_same_sentence() -> None:
    context = "The tower was built in 1902. It was painted red in 1950. Nobody lives there now."
    item = written.Written("Tower", 0, "When did the tower get its colour?", True, "paraphrase", "painted red in 1950")
    assert written.agrees(item, written.Reading(True, "It was painted red"), context)
    assert not written.agrees(item, written.Reading(True, "The tower was built in 1902"), context)
    assert not written.agrees(item, written.Reading(False, None), context)


def test_the_training_pairs_of_a_fold_hold_no_written_question_of_its_articles() -> None:
    """``benchmarks.answer_model --fold K`` must not see fold K's written questions: tune.py scores fold K with it."""
    from benchmarks import answer_model
    from benchmarks.folds import fold_of_titles

    folds = fold_of_titles()
    items = written.load()
    fold = folds[items[0].article]
    asked_in_fold = {i.question for i in items if folds[i.article] == fold}
    pairs = answer_model.build_pairs(fold, limit=0)
    trained = {p.question for p in pairs if p.kind.startswith("written_")}
    assert trained and not trained & asked_in_fold
    assert {p.question for p in answer_model.build_pairs(None, limit=0) if p.kind.startswith("written_")} >= (
        asked_in_fold
    )


def test_each_written_question_is_paired_with_its_sentence_by_its_label() -> None:
    from benchmarks import answer_model

    items = written.load()
    answerable = next(i for i in items if i.answerable)
    unanswerable = next(i for i in items if not i.answerable)
    pairs = answer_model.written_pairs([answerable, unanswerable], written.contexts())
    positive = [p for p in pairs if p.label == 1.0]
    assert len(positive) == 1 and positive[0].question == answerable.question
    assert answerable.sentence is not None and answerable.sentence in positive[0].sentence
    negatives = {p.question for p in pairs if p.label == 0.0}
    assert unanswerable.question in negatives
    assert all(p.sentence in written.contexts()[answerable.article][answerable.paragraph] for p in pairs[:1])


def test_every_written_pair_is_trained_on_and_squads_fill_the_rest() -> None:
    from benchmarks import answer_model

    hand = answer_model.written_pairs(written.load(), written.contexts())
    pairs = answer_model.build_pairs(None, limit=len(hand) + 100)
    assert len(pairs) == len(hand) + 100
    assert sum(p.kind.startswith("written_") for p in pairs) == len(hand)
