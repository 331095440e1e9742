"""One ranking pipeline: the product (``Searcher.rank``) and its tuning (``benchmarks/tune.py``) rank alike.

The tuning caches every question's evidence and the answer model's logits, and fits ``index/data/ranker.json`` by
ranking those cases again and again; if its ranking drifted from the product's, the weights it ships would be fitted
to something that never runs. Here both rank the questions of a small SQuAD file, each through its own code path
(tune's ``collect`` and cached logits; a fresh library and ``Searcher.rank``), and must agree to the last bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import tune
from index.analysis.answer_model import AnswerModel
from index.config import IndexConfig
from index.evaluate import load_squad, squad_to_article
from index.search.ranker import default_ranker
from index.search.ranking import ModelScorer, QuestionEvidence, Ranked, rank
from index.search.retrieve import Ranking, Searcher
from index.store.library import Library
from tests.support.paths import DATA

TINY = DATA / "tiny-squad.json"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tune.Case], tune.CachedEmbedder, Path]:
    """Return tune's cases of the tiny SQuAD file, the embedder behind its vector cache, and the cache folder."""
    cache = tmp_path_factory.mktemp("tune-cache")
    cases = tune.collect(TINY, cache, offtopic=2, library=True, folds=2, library_offtopic=2)
    (saved,) = cache.glob("vectors-*.npz")
    from index.analysis.embed import Embedder

    return cases, tune.CachedEmbedder(Embedder(IndexConfig(seed=False).model), saved), cache


def _product(embedder: tune.CachedEmbedder, numbers: list[int]) -> Searcher:
    """Return a searcher over a new library of the tiny file's articles ``numbers``, in that order."""
    squad = load_squad(TINY)
    library = Library(None, IndexConfig(seed=False))
    for n in numbers:
        library.add(squad_to_article(squad[n]), embedder)  # type: ignore[arg-type]
    return Searcher(library, embedder, answer_model=AnswerModel(threads=2))  # type: ignore[arg-type]


def _as_product_sees_it(c: tune.Case, ranked: Ranked) -> tuple[list[tuple[str, int]], int | None, float]:
    """Return tune's ranking of ``c`` as (title, paragraph) pairs best first, the marked sentence, the confidence."""
    pairs = c.evidence.pairs
    order = [(pairs[int(i)][0].record.title, pairs[int(i)][1]) for i in ranked.ordered.order]
    best = ranked.ordered.best
    return order, (int(c.evidence.numbers[best]) if best is not None else None), ranked.confidence


def _seen(r: Ranking) -> tuple[list[tuple[str, int]], int | None, float]:
    """Return the product's ranking ``r`` in the same terms."""
    order = [(p.article.record.title, p.paragraph) for p in r.paragraphs]
    return order, (r.paragraphs[0].sentences[0] if r.paragraphs[0].sentences else None), r.confidence


def test_tuning_and_product_rank_every_question_alike(tuned: tuple[list[tune.Case], tune.CachedEmbedder, Path]) -> None:
    cases, embedder, cache = tuned
    ranker = default_ranker()
    scores = tune.AnswerScores(folds=2, held_out=False, cache=cache)  # the shipped model, as the product reads
    one = {n: _product(embedder, [n]) for n in range(len(load_squad(TINY)))}
    whole = _product(embedder, list(one))
    compared = {"article": 0, "library": 0}
    for c in cases:
        if c.held_back or c.mode not in compared or (c.mode == "library" and not c.answerable):
            continue  # held back: no product library lacks those paragraphs; library off-topic: asked of a fold
        searcher = one[c.article] if c.mode == "article" else whole
        product = searcher.rank(c.evidence.question)
        tuning = tune.rank_case(c, ranker, scores)
        assert _as_product_sees_it(c, tuning) == _seen(product), c.evidence.question
        assert product.decision == dict(zip(product.decision, tuning.decision.tolist(), strict=True))
        compared[c.mode] += 1
    # Every answerable question of the file, asked both ways, and two off-topic ones of each article's.
    squad = load_squad(TINY)
    answerable = sum(not q.impossible for item in squad for q in item.questions)
    assert compared == {"article": answerable + 2 * len(squad), "library": answerable}


def test_the_tunings_cached_logits_are_the_models(tuned: tuple[list[tune.Case], tune.CachedEmbedder, Path]) -> None:
    """A second pass reads every logit from tune's disk cache, and ranks as the live model does."""
    cases, _, cache = tuned
    ranker = default_ranker()
    first = tune.AnswerScores(folds=2, held_out=False, cache=cache)
    live = [tune.rank_case(c, ranker, first) for c in cases]
    first.save()
    again = tune.AnswerScores(folds=2, held_out=False, cache=cache)
    again._models.clear()
    for c, before in zip(cases, live, strict=True):
        after = tune.rank_case(c, ranker, again)
        assert after.confidence == before.confidence and after.ordered.order.tolist() == before.ordered.order.tolist()
    assert not again._models, "a logit was computed instead of read from the cache"


def test_the_stages_read_only_the_question_evidence(seed_searcher: Searcher) -> None:
    """``ranking.rank`` over a gathered record is ``Searcher.rank``: nothing else feeds the stages."""
    question = "Which two roads meet at Saraqeb?"
    c = seed_searcher.candidates(question)
    evidence = seed_searcher.gather(question, c)
    assert isinstance(evidence, QuestionEvidence)
    ranked = rank(evidence, seed_searcher.ranker, ModelScorer(seed_searcher.answer_model))
    product = seed_searcher.rank(question)
    assert product.paragraphs[0].paragraph == evidence.pairs[ranked.ordered.top][1]
    assert product.confidence == ranked.confidence
    np.testing.assert_array_equal(product.features.paragraphs, evidence.features.paragraphs)  # type: ignore[union-attr]


def test_hand_written_questions_are_asked_of_their_article_with_their_gold(tmp_path: Path) -> None:
    """tune asks the written questions in mode "written": a paraphrase's gold is its paragraph and the sentence holding
    its piece; an unanswerable one counts as SQuAD 2.0's (fitted as a negative of the decision, reported apart)."""
    from benchmarks.written import Written

    hand = [
        Written("Harbor_Lighthouse", 1, "How many people at sea did the first keeper save?", True, "paraphrase",
                "She rescued eleven fishermen"),
        Written("Harbor_Lighthouse", 1, "Which keeper came after Margaret Doyle?", False, "other-role", None),
    ]  # fmt: skip
    cases = tune.collect(TINY, tmp_path, offtopic=0, library=False, hand_written=hand)
    written = [c for c in cases if c.mode == "written"]
    assert len(written) == 2
    answerable, unanswerable = written
    assert answerable.answerable and not answerable.unanswerable and len(answerable.gold) == 1
    (gold,) = answerable.gold
    assert answerable.evidence.pairs[gold][1] == 1  # the paragraph it was written over
    hits = [answerable.evidence.sentence_text(int(i)) for i in np.flatnonzero(answerable.sentence_hits)]
    assert hits and all("She rescued eleven fishermen" in h for h in hits)
    assert not unanswerable.answerable and unanswerable.unanswerable and unanswerable.gold == ()
