"""The answerability decision: the heuristics it reads, and the three verdicts on the bundled article."""

from __future__ import annotations

import json

import pytest

from bot.terminal.render import render_answer
from index.analysis.words import tokenize
from index.answer import answer, uncertain, verdict
from index.search.answerability import (
    ANSWER_TYPES,
    FEATURES,
    Collection,
    expected_type,
    focus_term,
    has_type,
    names,
    signals,
)
from index.search.features import DECISION_FEATURES
from index.search.ranker import default_ranker
from index.search.retrieve import Searcher
from tests.support.paths import BENCHMARKS

NEAR_TOPIC = json.loads((BENCHMARKS / "seed_neartopic.json").read_text())["unanswerable"]
SEED = json.loads((BENCHMARKS / "seed_questions.json").read_text())


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many Russian drones were reported downed?", "number"),
        ("What is the population of Idlib province?", "number"),
        ("How much does Turkey spend on its military?", "number"),
        ("When did the truce between Turkey and Russia collapse?", "date"),
        ("In what year did the war start?", "date"),
        ("Where were Turkish tanks seen heading?", "place"),
        ("What city is the capital of Syria?", "place"),
        ("Who withdrew from Nayrab?", "person"),
        ("What did Erdogan warn of?", None),
        ("Why has cooperation between Russia and Turkey become strained?", None),
    ],
)
def test_expected_answer_type(question: str, kind: str | None) -> None:
    assert expected_type(question) == kind


def test_has_type_finds_numbers_dates_and_names_the_question_lacks() -> None:
    assert has_type("two Russian drones were downed", "number", "How many drones were downed?")
    assert has_type("nearly 1 million people driven from their homes", "number")
    assert not has_type("Ankara has denied the claim.", "number")
    assert has_type("A truce collapsed in late 2019.", "date")
    assert has_type("Talks took place in Moscow on Thursday.", "date")
    assert not has_type("Talks are set to continue.", "date")
    assert has_type("rebels of the Free Syrian Army celebrating", "person", "Who celebrated?")
    # The only name is one the question already says: nothing new to answer "who" with.
    assert not has_type("the drones were shot down near Nayrab.", "person", "Who shot down drones near Nayrab?")
    # A capital at the start of the sentence is not a name.
    assert not has_type("Talks are set to continue.", "place")


def test_has_type_names_the_valid_types() -> None:
    with pytest.raises(ValueError, match="number, date, person, place"):
        has_type("text", "colour")
    assert ANSWER_TYPES == ("number", "date", "person", "place")


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("What is the capital of Syria?", "capit"),
        ("Which town did Turkish commandos storm?", "town"),
        ("What type of drones did Russia lose?", "drone"),
        ("What is the name of Erdogan's ruling party?", "erdogan"),
        ("What did Erdogan warn of?", None),
        ("Who withdrew from Nayrab?", None),
    ],
)
def test_focus_term(question: str, focus: str | None) -> None:
    assert focus_term(question) == focus


def test_names_are_capitalised_words_after_the_first_and_figures() -> None:
    assert names("What did the Normans do in 1066 with William?") == ["normans", "1066", "william"]
    assert names("Who is the president of Russia?") == ["russia"]


def test_signals_see_what_the_sentence_lacks() -> None:
    collection = Collection({"capit": 2.0, "syria": 0.5, "oper": 1.0}, unknown_idf=3.0)
    question = "What is the capital of Syria?"
    sentence = "The Turkish military has launched a ground operation inside Syria."
    got = signals(question, sentence, sentence, collection, tokenize(question))
    assert set(got) == set(FEATURES)
    assert got["sentence_missing_max_idf"] == pytest.approx(2.0 / 3.0)  # "capital", absent, IDF 2 of at most 3
    assert got["focus_in_sentence"] == 0.0
    answered = signals(question, "Damascus is the capital of Syria.", "", collection, tokenize(question))
    assert answered["sentence_missing_max_idf"] == 0.0
    assert answered["focus_in_sentence"] == 1.0


def test_signals_type_and_negation() -> None:
    collection = Collection({}, unknown_idf=3.0)
    question = "How many drones were not downed?"
    none = signals(question, "Drones were downed.", "", collection, tokenize(question))
    assert none["type_missing"] == 1.0
    assert none["negation_mismatch"] == 1.0
    some = signals(question, "Two drones were not downed.", "", collection, tokenize(question))
    assert some["type_missing"] == 0.0
    assert some["negation_mismatch"] == 0.0


def test_decision_model_reads_every_signal_by_name() -> None:
    ranker = default_ranker()
    assert ranker.decision.names == DECISION_FEATURES
    assert set(FEATURES) <= set(DECISION_FEATURES)


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [(0.9, "answered"), (0.5, "answered"), (0.49, "uncertain"), (0.2, "uncertain"), (0.19, "unanswered")],
)
def test_verdict_cut_offs(confidence: float, expected: str) -> None:
    assert verdict(confidence, 0.5, 0.2) == expected


def test_no_uncertain_band_when_the_cut_offs_meet() -> None:
    assert verdict(0.3, 0.5, 0.5) == "unanswered"


# --- end to end, with the real model and the shipped weights --------------------------------------------


def test_near_topic_questions_are_rejected_far_more_often_than_before(seed_searcher: Searcher) -> None:
    # The decision before issue 10 rejected 4 of these 40 (0.10), the word-matching signals 15 (0.375), with the
    # answer-sentence model 23 (0.575). The target is 0.85: not met (docs/quality.md). The floor here fails if the
    # answer-sentence model stops counting.
    results = [answer(seed_searcher, q) for q in NEAR_TOPIC]
    rejected = [r for r in results if not r.found]
    assert len(rejected) >= 0.5 * len(results), [r.question for r in results if r.found]
    assert all(r.verdict in ("uncertain", "unanswered") for r in rejected)


@pytest.mark.parametrize(
    "question",
    [
        pytest.param(
            "What is the capital of Syria?",
            marks=pytest.mark.xfail(
                strict=True,
                reason="still answered (confidence about 0.5, from the opening paragraph): a known gap"
                " (docs/quality.md, 'The answer-sentence model')",
            ),
        ),
        "Who is the president of Russia?",
        pytest.param(
            "What is the population of Idlib province?",
            marks=pytest.mark.xfail(
                strict=True,
                reason="rejected by the answer model alone (0.24), answered again (0.31, past the cut-off) once the"
                " decision was also fitted to reject off-topic questions in a library: a known gap (docs/quality.md)",
            ),
        ),
    ],
)
def test_the_issue_examples_are_not_answered(seed_searcher: Searcher, question: str) -> None:
    result = answer(seed_searcher, question)
    assert not result.found, f"confidence {result.confidence:.3f}"
    assert result.passages  # the closest text is still shown


def test_answerable_questions_are_still_answered(seed_searcher: Searcher) -> None:
    results = [answer(seed_searcher, c["question"]) for c in SEED["answerable"]]
    # 19 of 20: the length of the war, implied by "the nine-year civil war", is "unanswered" (tests/test_answer.py).
    assert sum(r.found for r in results) >= 0.95 * len(results)
    assert all(r.verdict == "answered" for r in results if r.found)


def test_offtopic_questions_are_unanswered_not_uncertain(seed_searcher: Searcher) -> None:
    verdicts = [answer(seed_searcher, q).verdict for q in SEED["offtopic"]]
    assert verdicts.count("unanswered") >= 0.9 * len(verdicts)
    assert "answered" not in verdicts


def test_json_carries_the_verdict_and_found(seed_searcher: Searcher) -> None:
    data = answer(seed_searcher, "Which town did Turkish commandos storm?").to_dict()
    assert data["found"] is True and data["verdict"] == "answered"
    data = answer(seed_searcher, "How do I bake sourdough bread?").to_dict()
    assert data["found"] is False and data["verdict"] == "unanswered"


def test_console_shows_the_middle_outcome(seed_searcher: Searcher) -> None:
    from rich.console import Console

    result = answer(seed_searcher, "Which highways meet at Saraqeb?", min_score=1.0, uncertain_score=0.0)
    assert result.verdict == "uncertain" and not result.found
    console = Console(width=100, record=True, color_system=None)
    console.print(render_answer(result))
    text = console.export_text()
    assert uncertain(1) in text
    assert "M4 and M5" in text  # the closest passage is quoted
    assert "does not answer that" not in text


def test_the_uncertain_cut_off_is_a_setting() -> None:
    from bot.settings import Settings
    from index.errors import CitebotError

    assert Settings.from_env({"CITEBOT_UNCERTAIN_SCORE": "0.25"}, env_file=None).uncertain_score == 0.25
    with pytest.raises(CitebotError, match="CITEBOT_UNCERTAIN_SCORE"):
        Settings.from_env({"CITEBOT_UNCERTAIN_SCORE": "lots"}, env_file=None)
