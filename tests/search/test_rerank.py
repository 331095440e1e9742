"""The second stage: which sentences the answer model reads, and how its logits spread over the candidates."""

from __future__ import annotations

import numpy as np
import pytest

from index.search.ranker import default_ranker
from index.search.rerank import ANSWER_SENTENCES, Reading, answer_candidates, spread


def test_it_reads_the_best_sentences_of_the_best_paragraphs() -> None:
    paragraph = np.array([0.1, 2.0, 1.0, -1.0])
    sentence_paragraph = np.array([0, 0, 1, 1, 1, 1, 2, 2, 3])
    sentence = np.array([5.0, 4.0, 0.1, 0.9, 0.5, 0.7, 0.2, 0.3, 9.0])
    chosen = answer_candidates(paragraph, sentence, sentence_paragraph, Reading((3, 1, 1)))
    # paragraph 1 first (its three best: 3, 5, 4), then paragraph 2 (7), then paragraph 0 (0); never paragraph 3.
    assert chosen.tolist() == [3, 5, 4, 7, 0]


def test_a_budget_longer_than_the_candidates_is_fine() -> None:
    chosen = answer_candidates(np.array([1.0]), np.array([0.5, 0.2]), np.array([0, 0]), Reading(ANSWER_SENTENCES))
    assert sorted(chosen.tolist()) == [0, 1]


def test_it_also_reads_the_top_of_each_first_stage_list_in_turn_up_to_the_limit() -> None:
    """A sentence only the dense list or only BM25 ranks high is read, though its paragraph ranks low."""
    paragraph = np.array([2.0, 1.0, 0.0])
    sentence_paragraph = np.array([0, 0, 1, 1, 2, 2])
    sentence = np.array([3.0, 2.0, 1.0, 0.5, 0.1, 0.0])
    dense = np.array([0.1, 0.2, 0.3, 0.1, 0.9, 0.2])  # paragraph 2's first sentence, in other words
    bm25 = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 4.0])  # paragraph 2's second, by a rare word
    assert answer_candidates(paragraph, sentence, sentence_paragraph, Reading((1,))).tolist() == [0]
    wide = answer_candidates(paragraph, sentence, sentence_paragraph, Reading((1,), 2, 12), dense, bm25)
    # per rank: 0; then rank 0 of each list: 0 (already), 4 (dense), 5 (BM25); then rank 1: 1, 2, 1 (read once)
    assert wide.tolist() == [0, 4, 5, 1, 2]
    capped = answer_candidates(paragraph, sentence, sentence_paragraph, Reading((1,), 2, 3), dense, bm25)
    assert capped.tolist() == [0, 4, 5]


def test_a_sure_first_stage_reads_only_the_per_rank_sentences() -> None:
    sentence_paragraph = np.array([0, 0, 1, 1])
    sentence, dense = np.array([3.0, 2.0, 1.0, 0.5]), np.array([0.1, 0.2, 0.9, 0.1])
    reading = Reading((1,), 2, 12, sure_margin=1.5)
    sure = answer_candidates(np.array([3.0, 1.0]), sentence, sentence_paragraph, reading, dense)
    unsure = answer_candidates(np.array([3.0, 2.0]), sentence, sentence_paragraph, reading, dense)
    assert sure.tolist() == [0]
    assert unsure.tolist() == [0, 2, 1]


def test_a_reading_is_written_as_ranker_json_records_it_and_refuses_nonsense() -> None:
    reading = Reading.parse("2,1+4/10")
    assert reading == Reading((2, 1), 4, 10)
    assert Reading.from_dict(reading.to_dict()) == reading
    assert Reading.parse(str(Reading((2, 1), 4, 12, 3.5))) == Reading((2, 1), 4, 12, 3.5)
    assert Reading.from_dict(None) == Reading(ANSWER_SENTENCES)  # a ranker.json from before readings were recorded
    assert default_ranker().reading == Reading.from_dict(default_ranker().to_dict()["reading"])
    for bad in ("two", "2,1+x", "2,-1", "2,1+4/0", "2,1@sure"):
        with pytest.raises(ValueError, match=r"PER_RANK|0 or more"):
            Reading.parse(bad)


def test_what_was_not_read_takes_the_lowest_logit_read() -> None:
    sentence_paragraph = np.array([0, 0, 0, 1, 1, 2])
    chosen = np.array([0, 1, 3])
    read = spread(np.array([2.0, -1.0, 0.5]), chosen, sentence_paragraph, paragraphs=3)
    assert read.read.tolist() == [True, True, False, True, False, False]
    assert read.sentence.tolist() == [2.0, -1.0, -1.0, 0.5, 0.5, -1.0]  # in its paragraph's lowest, else overall
    assert read.paragraph.tolist() == [2.0, 0.5, -1.0]
    assert read.decision(1) == (-1.0, 2.0)  # the marked sentence's logit, the best read


def test_nothing_read_gives_neutral_evidence() -> None:
    read = spread(np.zeros(0), np.zeros(0, dtype=np.int64), np.array([0, 0]), paragraphs=1)
    assert read.decision(None) == (0.0, 0.0)
    assert not read.read.any()


@pytest.mark.parametrize("seed", range(20))
def test_with_the_shipped_weights_nothing_unread_climbs_above_what_was_read(seed: int) -> None:
    """The fill rule relies on weights that are not negative: check it on the fitted file and on random data."""
    ranker = default_ranker()
    rng = np.random.default_rng(seed)
    paragraphs = int(rng.integers(1, 8))
    sizes = rng.integers(1, 6, paragraphs)
    sentence_paragraph = np.repeat(np.arange(paragraphs), sizes)
    first_p = rng.normal(size=paragraphs) * 3
    first_s = rng.normal(size=len(sentence_paragraph)) * 3
    chosen = answer_candidates(first_p, first_s, sentence_paragraph)
    read = spread(rng.normal(size=len(chosen)) * 3, chosen, sentence_paragraph, paragraphs)
    p_score, s_score = ranker.second_stage(first_p, first_s, read)
    with_read = np.unique(sentence_paragraph[chosen])
    without = np.setdiff1d(np.arange(paragraphs), with_read)
    if len(without):
        assert p_score[without].max() <= p_score[with_read].min() + 1e-9
    for p in with_read:
        members = np.flatnonzero(sentence_paragraph == p)
        inside, outside = members[read.read[members]], members[~read.read[members]]
        if len(outside):
            assert s_score[outside].max() <= s_score[inside].min() + 1e-9
