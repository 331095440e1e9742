"""Fit the ranker's parameters (index/data/ranker.json) on a SQuAD file, with article-wise cross-validation.

    .venv/bin/pip install -e '.[tune]'       # scikit-learn, only for this script
    for k in 0 1 2 3 4 5; do .venv/bin/python -m benchmarks.answer_model --fold $k; done   # the fold models
    .venv/bin/python -m benchmarks.tune ../shared/data/squad-v1.1-dev-A.json \
        --squad2 ../shared/data/squad-v2.0-dev-A.json [--folds 6] [--write]

Every article is read, cleaned, split and embedded by citebot's own code
(:func:`index.evaluate.squad_to_article`, :meth:`index.store.library.Library.add`),
and every question's evidence comes from :meth:`index.search.retrieve.Searcher.gather` and is ranked by the stages
of :mod:`index.search.ranking`, what runs at question time, so what is fitted is what runs
(``tests/search/test_ranking.py`` holds this script's ranking and the product's equal).
Questions are asked two ways: of a library holding only their article, and of one library
holding every article of the file (library search), and both are fitted together.

With ``--squad2``, the SQuAD 2.0 file's questions (answerable and not) are asked of their article too; and, unless
``--no-written``, the hand-written questions of ``benchmarks/written_questions/`` (mode "written"). Both are fitted on
with the rest and reported on their own.

Five models are fitted:

* paragraphs: a conditional logit (softmax over the candidate paragraphs, L2),
  the answering paragraph(s) as the positive;
* sentences: the same over the sentences of the answering paragraph, the ones
  holding a gold answer string as the positives;
* the second stage (:mod:`index.search.rerank`): the same two again, each with the answer-sentence model's
  logit beside the first stage's score;
* the decision: a logistic regression (scikit-learn, balanced classes) of the
  article's questions against questions drawn from other articles and SQuAD 2.0's unanswerable ones.

Articles are split into ``--folds`` groups; each group is scored by models
fitted on the others, and those held-out numbers are what is printed. The answer-sentence model is held out
the same way: a case is scored by the model trained without its article's fold (``benchmarks/answer_model.py
--fold K``). With ``--write`` the linear models are refitted on every article, on those held-out logits, and
written to ``index/data/ranker.json``. Embeddings and logits are cached under ``--cache`` so a rerun is quicker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from benchmarks import targets, written
from benchmarks.answer_model import FOLD_MODELS
from benchmarks.folds import fold_of
from benchmarks.written import Written
from index.analysis.answer_model import DEFAULT_DIRECTORY as SHIPPED_ANSWER_MODEL
from index.analysis.answer_model import MODEL_FILE as ANSWER_MODEL_FILE
from index.analysis.answer_model import AnswerModel
from index.analysis.embed import Embedder
from index.config import IndexConfig
from index.evaluate import contains_answer, load_squad, map_paragraphs, offtopic_questions, squad_to_article
from index.search import ranking
from index.search.features import DECISION_FEATURES, PARAGRAPH_FEATURES, SENTENCE_FEATURES, Evidence
from index.search.ranker import Linear, Ranker, default_ranker
from index.search.ranking import AnswerScorer, QuestionEvidence, Ranked, Staged
from index.search.rerank import (
    RERANK_PARAGRAPH_FEATURES,
    RERANK_SENTENCE_FEATURES,
    Reading,
    paragraph_columns,
    sentence_columns,
)
from index.search.retrieve import Searcher
from index.store.library import Library

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "index" / "data" / "ranker.json"
#: Modes reported on their own, not pooled into the figures of ``citebot eval`` (SQuAD 2.0's, and the hand-written).
SEPARATE_MODES = ("squad2", "written")


class CachedEmbedder:
    """The real model behind a cache of text vectors kept on disk, so a rerun embeds nothing."""

    def __init__(self, embedder: Embedder, path: Path) -> None:
        self._embedder = embedder
        self._path = path
        self._vectors: dict[str, np.ndarray] = {}
        if path.exists():
            saved = np.load(path, allow_pickle=False)
            self._vectors = dict(zip(saved["texts"].tolist(), saved["vectors"], strict=True))
        self._dirty = False

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        progress: bool | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            print(f"embedding {len(missing)} texts", file=sys.stderr)
            for text, vector in zip(
                missing, self._embedder.encode(missing, batch_size=64, should_stop=should_stop), strict=True
            ):
                self._vectors[text] = vector
            self._dirty = True
        return np.array([self._vectors[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def save(self) -> None:
        if self._dirty:
            texts = list(self._vectors)
            np.savez(self._path, texts=np.array(texts), vectors=np.array([self._vectors[t] for t in texts]))
            self._dirty = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)


@dataclass
class Case:
    """One question against a library (one article's, or all of them): its evidence, as the product ranks it, and what
    is right."""

    evidence: QuestionEvidence  # what Searcher.gather made of it: the candidates, their features and texts
    article: int  # the SQuAD article the question is from (for folds)
    mode: str  # "article", "library", "squad2" (SQuAD 2.0's questions) or "written" (hand-written), see collect
    answerable: bool
    gold: tuple[int, ...]  # candidate numbers of the answering paragraph(s)
    article_of: np.ndarray  # per candidate, the SQuAD article it is from
    sentence_hits: np.ndarray  # per sentence: holds a gold answer
    unanswerable: bool = False  # one of SQuAD 2.0's unanswerable questions
    held_back: bool = False  # an answerable question asked with its answering paragraph(s) held back

    @property
    def paragraphs(self) -> np.ndarray:
        """The candidate paragraphs' first-stage feature rows."""
        return self.evidence.features.paragraphs

    @property
    def sentences(self) -> np.ndarray:
        """The candidate sentences' first-stage feature rows."""
        return self.evidence.features.sentences

    @property
    def sentence_paragraph(self) -> np.ndarray:
        """Per candidate sentence, its candidate paragraph."""
        return self.evidence.sentence_paragraph


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _hold_back(ev: Evidence, numbers: np.ndarray, drop: tuple[int, ...]) -> tuple[Evidence, np.ndarray, np.ndarray]:
    """Return the evidence without the candidate paragraphs ``drop``, its sentence numbers and the kept paragraphs.

    The collection's statistics (IDF, which words it knows) stay those of the whole article: an approximation of
    the article without those paragraphs that costs no second library.
    """
    keep = np.setdiff1d(np.arange(ev.paragraphs), np.array(drop, dtype=np.int64))
    new_of = np.full(ev.paragraphs, -1, dtype=np.int64)
    new_of[keep] = np.arange(len(keep))
    kept = new_of[ev.sentence_paragraph] >= 0
    position = np.cumsum(kept) - 1
    chunks = kept[ev.chunk_first] if len(ev.chunk_first) else np.zeros(0, dtype=bool)
    sub = Evidence(
        paragraphs=len(keep),
        sentence_paragraph=new_of[ev.sentence_paragraph[kept]],
        sentence_cosine=ev.sentence_cosine[kept],
        chunk_cosine=ev.chunk_cosine[chunks],
        chunk_first=position[ev.chunk_first[chunks]],
        chunk_last=position[ev.chunk_last[chunks] - 1] + 1,
        paragraph_bm25=ev.paragraph_bm25[keep],
        sentence_bm25=ev.sentence_bm25[kept],
        presence=ev.presence[kept],
        sentence_bigrams=ev.sentence_bigrams[kept],
        paragraph_bigrams=ev.paragraph_bigrams[keep],
        pairs=ev.pairs,
        sentence_digit=ev.sentence_digit[kept],
        sentence_words=ev.sentence_words[kept],
        sentence_unique=ev.sentence_unique[kept],
        weights=ev.weights,
        known=ev.known,
    )
    return sub, numbers[kept], keep


#: A question asked: its text, its SQuAD article's number, its answering (article, paragraph) pairs, its answers.
Asked = tuple[str, int, tuple[tuple[int, int], ...], tuple[str, ...]]


def _cases(
    searcher: Searcher,
    number_of: dict[int, int],
    asked: list[Asked],
    mode: str,
    impossible: frozenset[str] = frozenset(),
    hold_back_every: int = 0,
) -> list[Case]:
    """Return the cases of the ``asked`` questions; with ``hold_back_every`` N, every N-th answerable question is
    also asked with its answering paragraph held back (a question on the topic that the collection does not answer).
    """
    out = []
    for n, (text, article, gold, answers) in enumerate(asked):
        c = searcher.candidates(text)
        qe = searcher.gather(text, c)
        gold_at = tuple(i for i, (data, p) in enumerate(c.pairs) if (number_of[data.key], p) in gold)
        out.append(_case(qe, number_of, article, gold_at, answers, mode, text in impossible))
        if hold_back_every and answers and gold_at and n % hold_back_every == 0 and len(gold_at) < len(c.pairs):
            sub, sub_numbers, keep = _hold_back(qe.evidence, qe.numbers, gold_at)
            pairs = [c.pairs[i] for i in keep]
            held = QuestionEvidence.of(text, pairs, sub, sub_numbers, c.terms, c.weights, c.known, c.unknown_weight)
            out.append(_case(held, number_of, article, (), (), mode, False, held_back=True))
    return out


def _case(
    qe: QuestionEvidence,
    number_of: dict[int, int],
    article: int,
    gold_at: tuple[int, ...],
    answers: tuple[str, ...],
    mode: str,
    impossible: bool,
    held_back: bool = False,
) -> Case:
    """Return one case: the evidence ``qe`` and what is right (``gold_at``: the answering candidate paragraphs)."""
    hits = np.zeros(len(qe.numbers), dtype=bool)
    if answers:
        for i, local in enumerate(qe.sentence_paragraph):
            if local in gold_at:
                hits[i] = contains_answer(qe.sentence_text(i), answers)
    return Case(
        evidence=qe,
        article=article,
        mode=mode,
        answerable=bool(answers),
        gold=gold_at,
        article_of=np.array([number_of[data.key] for data, _ in qe.pairs]),
        sentence_hits=hits,
        unanswerable=not answers and impossible,
        held_back=held_back,
    )


def _library_offtopic(c: Case) -> bool:
    """Return whether ``c`` is an off-topic question asked of a library."""
    return c.mode == "library" and not c.answerable


def fold_articles(articles: list[int], folds: int) -> list[list[int]]:
    """Return the articles of each fold, by :func:`benchmarks.folds.fold_of` (as the fold models were made)."""
    return [[a for a in articles if fold_of(a, folds) == i] for i in range(folds)]


def collect(
    path: Path,
    cache: Path,
    offtopic: int,
    library: bool = True,
    squad2: Path | None = None,
    hold_back_every: int = 2,
    folds: int = 6,
    library_offtopic: int = 50,
    hand_written: list[Written] | None = None,
) -> list[Case]:
    """Return the cases of the SQuAD file at ``path`` (and, in mode "squad2", of the SQuAD 2.0 file ``squad2``).

    In mode "library", off-topic questions too: ``library_offtopic`` questions of each article, asked of a library of
    the articles outside its fold (as ``citebot eval --library`` asks the held-out articles' questions). In mode
    "written", the ``hand_written`` questions (:mod:`benchmarks.written`) of the file's articles, each asked of its
    article: an answerable one's gold is its paragraph and the sentence holding its verbatim piece, an unanswerable
    one counts as SQuAD 2.0's do.
    """
    squad = load_squad(path)
    config = IndexConfig(seed=False)
    cache.mkdir(parents=True, exist_ok=True)
    real = Embedder(config.model)
    real.progress = False
    embedder = CachedEmbedder(real, cache / f"vectors-{_cache_key(real.fingerprint, str(path))}.npz")
    articles = [squad_to_article(item) for item in squad]
    mappings = [map_paragraphs(a, item.contexts) for a, item in zip(articles, squad, strict=True)]
    cases: list[Case] = []
    whole = Library(None, config)
    number_of: dict[int, int] = {}
    for number, (item, article) in enumerate(zip(squad, articles, strict=True)):
        one = Library(None, config)
        key = one.add(article, embedder).record.key  # type: ignore[arg-type]
        gold_of = {q.question: tuple((number, i) for i in mappings[number][q.paragraph]) for q in item.questions}
        asked = [(q.question, number, gold_of[q.question], q.answers) for q in item.questions if not q.impossible]
        asked += [(t, number, (), ()) for t in offtopic_questions(squad, number, offtopic, seed=1)]
        cases += _cases(
            Searcher(one, embedder),  # type: ignore[arg-type]
            {key: number},
            asked,
            "article",
            hold_back_every=hold_back_every,
        )
        mine = [w for w in hand_written or [] if w.article == item.title]
        if mine:
            gold_at = mappings[number]
            asked = []
            for w in mine:
                gold = tuple((number, i) for i in gold_at[w.paragraph])
                asked.append(
                    (w.question, number, gold, (w.sentence or "",)) if w.answerable else (w.question, number, (), ())
                )
            impossible = frozenset(w.question for w in mine if not w.answerable)
            cases += _cases(Searcher(one, embedder), {key: number}, asked, "written", impossible)  # type: ignore[arg-type]
        number_of[whole.add(article, embedder).record.key] = number  # type: ignore[arg-type]
        embedder.save()
    if library:
        searcher = Searcher(whole, embedder)  # type: ignore[arg-type]
        asked = []
        for number, item in enumerate(squad):
            for q in item.questions:
                if not q.impossible:
                    asked.append(
                        (q.question, number, tuple((number, i) for i in mappings[number][q.paragraph]), q.answers)
                    )
        cases += _cases(searcher, number_of, asked, "library")
        for fold in fold_articles(list(range(len(squad))), folds):
            others = Library(None, config)
            numbers = {
                others.add(article, embedder).record.key: number  # type: ignore[arg-type]
                for number, article in enumerate(articles)
                if number not in fold
            }
            asked = []
            for number in fold:
                own = [q.question for q in squad[number].questions if not q.impossible]
                sample = random.Random(f"library-offtopic:{number}").sample(own, min(library_offtopic, len(own)))
                asked += [(t, number, (), ()) for t in sample]
            cases += _cases(Searcher(others, embedder), numbers, asked, "library")  # type: ignore[arg-type]
    if squad2 is not None:
        number_by_title = {item.title: number for number, item in enumerate(squad)}
        for item in load_squad(squad2):
            number = number_by_title[item.title]  # its SQuAD 1.1 namesake's number: the same fold
            article = squad_to_article(item)
            one = Library(None, config)
            key = one.add(article, embedder).record.key  # type: ignore[arg-type]
            mapping = map_paragraphs(article, item.contexts)
            asked = [
                (q.question, number, tuple((number, i) for i in mapping[q.paragraph]), q.answers)
                for q in item.questions
            ]
            impossible = frozenset(q.question for q in item.questions if q.impossible)
            cases += _cases(Searcher(one, embedder), {key: number}, asked, "squad2", impossible)  # type: ignore[arg-type]
            embedder.save()
    embedder.save()
    return cases


# --- conditional logit -------------------------------------------------------------------------------


def _pad(groups: list[np.ndarray], positives: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(len(g) for g in groups)
    dim = groups[0].shape[1]
    x = np.zeros((len(groups), width, dim))
    mask = np.zeros((len(groups), width), dtype=bool)
    pos = np.zeros((len(groups), width), dtype=bool)
    for i, (g, p) in enumerate(zip(groups, positives, strict=True)):
        x[i, : len(g)] = g
        mask[i, : len(g)] = True
        pos[i, : len(g)] = p
    return x, mask, pos


def fit_softmax(groups: list[np.ndarray], positives: list[np.ndarray], l2: float, names: tuple[str, ...]) -> Linear:
    """Fit weights so that, in each group, the positives get the most softmax mass."""
    rows = np.concatenate(groups)
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x, mask, pos = _pad([(g - mean) / scale for g in groups], positives)
    n = len(groups)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.where(mask, x @ w, -np.inf)
        top = z.max(axis=1, keepdims=True)
        e = np.exp(z - top)
        p_all = e / e.sum(axis=1, keepdims=True)
        ep = np.where(pos, e, 0.0)
        p_pos = ep / ep.sum(axis=1, keepdims=True)
        value = np.log(e.sum(axis=1)) - np.log(ep.sum(axis=1))
        grad = np.einsum("qp,qpf->f", p_all - p_pos, x)
        return float(value.sum() / n + 0.5 * l2 * w @ w), grad / n + l2 * w

    result = minimize(loss, np.zeros(x.shape[2]), jac=True, method="L-BFGS-B")
    return Linear(names, mean, scale, result.x)


# --- cross-validation --------------------------------------------------------------------------------


class AnswerScores:
    """The answer-sentence model's logits for each case, cached on disk.

    With ``held_out`` (cross-validation), a case is scored by the model that never saw its article
    (``FOLD_MODELS/fold-K``, K its article's fold, made by ``benchmarks/answer_model.py --fold K``); without,
    by the shipped model. The cache is keyed by the models' files, so a retrained model is scored anew.
    """

    def __init__(self, folds: int, held_out: bool, cache: Path, fold_models: Path = FOLD_MODELS) -> None:
        self.folds = folds
        directories = (
            {k: fold_models / f"fold-{k}" for k in range(folds)} if held_out else dict.fromkeys(range(folds), None)
        )
        self._directories = {k: d or SHIPPED_ANSWER_MODEL for k, d in directories.items()}
        missing = [str(d) for d in self._directories.values() if not (d / ANSWER_MODEL_FILE).exists()]
        if missing:
            raise SystemExit(f"no answer-sentence model in {', '.join(sorted(set(missing)))}: train it first")
        stamp = _cache_key(
            *(hashlib.sha256((d / ANSWER_MODEL_FILE).read_bytes()).hexdigest() for d in self._directories.values())
        )
        self._path = cache / f"answer-logits-{stamp}.json"
        self._logits: dict[str, float] = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._models: dict[Path, AnswerModel] = {}
        self._dirty = 0

    def of(self, c: Case) -> AnswerScorer:
        """Return the scorer of case ``c``'s sentences: the model that never saw its article's fold."""
        return partial(self.score, fold_of(c.article, self.folds))

    def score(self, fold: int, ev: QuestionEvidence, chosen: np.ndarray) -> np.ndarray:
        """Return the logits fold ``fold``'s model gives ``ev``'s candidate sentences ``chosen``."""
        texts = [ev.sentence_text(int(i)) for i in chosen]
        keys = [f"{fold}\0{ev.question}\0{t}" for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self._logits]
        if todo:
            directory = self._directories[fold]
            model = self._models.get(directory)
            if model is None:
                model = self._models[directory] = AnswerModel(directory, threads=2)
            for i, value in zip(todo, model.score(ev.question, [texts[i] for i in todo]), strict=True):
                self._logits[keys[i]] = float(value)
            self._dirty += len(todo)
            if self._dirty > 20000:
                self.save()
        return np.array([self._logits[k] for k in keys], dtype=np.float64)

    def save(self) -> None:
        if self._dirty:
            self._path.write_text(json.dumps(self._logits))
            self._dirty = 0


def sentence_groups(
    cases: list[Case], columns: list[np.ndarray] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return the sentence groups (the answering paragraph's sentences) and their positives, for a softmax."""
    groups, positives = [], []
    for n, c in enumerate(cases):
        if not c.answerable or not c.gold:
            continue
        members = np.flatnonzero(np.isin(c.sentence_paragraph, c.gold))
        hits = c.sentence_hits[members]
        if hits.any() and not hits.all():
            rows = c.sentences if columns is None else columns[n]
            groups.append(rows[members])
            positives.append(hits)
    return groups, positives


def paragraph_groups(
    cases: list[Case], columns: list[np.ndarray] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return the candidate paragraph groups and their positives (the answering paragraphs), for a softmax."""
    groups, positives = [], []
    for n, c in enumerate(cases):
        if c.answerable and c.gold:
            pos = np.zeros(len(c.paragraphs), dtype=bool)
            pos[list(c.gold)] = True
            groups.append(c.paragraphs if columns is None else columns[n])
            positives.append(pos)
    return groups, positives


def _decision_row(c: Case, ranker: Ranker, staged: Staged) -> np.ndarray:
    """Return the decision's features of case ``c`` as ``ranker``'s second stage orders and marks it."""
    return ranking.decision_row(c.evidence, staged, ranking.second_stage(c.evidence, ranker, staged))


def rank_case(c: Case, ranker: Ranker, scores: AnswerScores, reading: Reading | None = None) -> Ranked:
    """Return what :func:`index.search.ranking.rank` (what ``Searcher.rank`` runs) makes of case ``c``."""
    return ranking.rank(c.evidence, ranker, scores.of(c), reading)


def fit_decision(cases: list[Case], ranker: Ranker, staged: list[Staged], c_value: float) -> Linear:
    x = np.array([_decision_row(c, ranker, st) for c, st in zip(cases, staged, strict=True)])
    y = np.array([c.answerable for c in cases])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c_value, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
    return Linear(DECISION_FEATURES, mean, scale, model.coef_[0], float(model.intercept_[0]))


def fit_all(
    cases: list[Case],
    l2: float,
    c_value: float,
    scores: AnswerScores,
    keep_first_stage: bool = False,
    reading: Reading | None = None,
) -> Ranker:
    """Fit every model on ``cases``: the first stage (or keep the shipped one), the second, the decision, for the
    answer model reading what ``reading`` chooses (``None``: the shipped ranker's reading)."""
    reading = reading or default_ranker().reading
    if keep_first_stage:
        shipped = default_ranker()
        paragraph, sentence = shipped.paragraph, shipped.sentence
    else:
        paragraph = fit_softmax(*paragraph_groups(cases), l2, PARAGRAPH_FEATURES)
        sentence = fit_softmax(*sentence_groups(cases), l2, SENTENCE_FEATURES)
    staged = [ranking.first_stage(c.evidence, paragraph, sentence, scores.of(c), reading) for c in cases]
    p_columns = [paragraph_columns(st.paragraph, st.read) for st in staged]
    s_columns = [sentence_columns(st.sentence, st.read) for st in staged]
    rerank_paragraph = fit_softmax(*paragraph_groups(cases, p_columns), l2, RERANK_PARAGRAPH_FEATURES)
    rerank_sentence = fit_softmax(*sentence_groups(cases, s_columns), l2, RERANK_SENTENCE_FEATURES)
    # Without a decision yet, the ranker orders and marks as it will; the decision is fitted on what it marks.
    ranker = Ranker(
        paragraph, sentence, rerank_paragraph, rerank_sentence, shipped_decision_placeholder(), reading=reading
    )
    decision = fit_decision(cases, ranker, staged, c_value)
    return Ranker(paragraph, sentence, rerank_paragraph, rerank_sentence, decision, reading=reading)


def shipped_decision_placeholder() -> Linear:
    """Return a decision model that decides nothing (only while the others are being fitted)."""
    zeros = np.zeros(len(DECISION_FEATURES))
    return Linear(DECISION_FEATURES, zeros, np.ones_like(zeros), zeros)


class Row(TypedDict):
    """What the ranker did with one held-out question."""

    article: int  # the SQuAD article it is from (its fold: benchmarks.folds.fold_of)
    mode: str
    answerable: bool
    unanswerable: bool
    held_back: bool
    rank: int | None  # the gold paragraph's rank (0: first), None beyond the first 20
    article_hit: bool  # the first paragraph is from the question's article
    highlight: bool  # its marked sentence holds a gold answer
    probability: float  # the decision's confidence
    read: int  # how many sentences the answer model read


def held_out(cases: list[Case], ranker: Ranker, scores: AnswerScores, reading: Reading | None = None) -> list[Row]:
    """Return, per question, what the ranker does with it: the rank of the gold paragraph, the hit, the probability."""
    out: list[Row] = []
    for c in cases:
        ranked = rank_case(c, ranker, scores, reading)
        order, top, best = ranked.ordered.order, ranked.ordered.top, ranked.ordered.best
        rank = next((i for i, q in enumerate(order[:20]) if q in c.gold), None)
        out.append(
            {
                "article": c.article,
                "mode": c.mode,
                "answerable": c.answerable,
                "unanswerable": c.unanswerable,
                "held_back": c.held_back,
                "rank": rank,
                "article_hit": bool(c.article_of[top] == c.article),
                "highlight": best is not None and bool(c.sentence_hits[best]),
                "probability": ranked.confidence,
                "read": int(ranked.staged.read.read.sum()),
            }
        )
    return out


def metrics(rows: list[Row], threshold: float) -> dict[str, float]:
    """Pool per-question results into the metrics of ``citebot eval`` (and SQuAD 2.0's, when there are some)."""
    answerable = [r for r in rows if r["answerable"]]
    offtopic = [r for r in rows if not r["answerable"] and not r["unanswerable"] and not r["held_back"]]
    n = max(len(answerable), 1)
    out = {
        "paragraph_r1": sum(r["rank"] == 0 for r in answerable) / n,
        "paragraph_r3": sum(r["rank"] is not None and r["rank"] < 3 for r in answerable) / n,
        "mrr": sum(1 / (r["rank"] + 1) for r in answerable if r["rank"] is not None) / n,
        "answer_in_highlight": sum(r["highlight"] for r in answerable) / n,
        "answerable_found": sum(r["probability"] >= threshold for r in answerable) / n,
        "offtopic_rejected": sum(r["probability"] < threshold for r in offtopic) / max(len(offtopic), 1),
        "article_r1": sum(r["article_hit"] for r in answerable) / n,
    }
    held = [r for r in rows if r["held_back"]]
    if held:
        out["held_back_rejected"] = sum(r["probability"] < threshold for r in held) / len(held)
    unanswerable = [r for r in rows if r["unanswerable"]]
    if unanswerable and answerable:
        out["unanswerable_rejected"] = sum(r["probability"] < threshold for r in unanswerable) / len(unanswerable)
        # The cut-off at which 0.90 of the answerable questions are still found, and what it rejects.
        cut = float(np.quantile([r["probability"] for r in answerable], 0.10))
        out["unanswerable_rejected_at_found_0.90"] = sum(r["probability"] < cut for r in unanswerable) / len(
            unanswerable
        )
    return out


def issue_measures(rows: list[Row], threshold: float) -> dict[str, float]:
    """Return the measures of :mod:`benchmarks.targets` that ``rows`` (held-out results) give."""
    out: dict[str, float] = {}
    library = metrics([r for r in rows if r["mode"] == "library"], threshold)
    if any(r["mode"] == "library" and r["answerable"] for r in rows):
        out |= {
            "library_r1": library["paragraph_r1"],
            "library_r3": library["paragraph_r3"],
            "library_highlight": library["answer_in_highlight"],
        }
    squad2 = metrics([r for r in rows if r["mode"] == "squad2"], threshold)
    if "unanswerable_rejected_at_found_0.90" in squad2:
        out["squad2_rejected_at_found_0.90"] = squad2["unanswerable_rejected_at_found_0.90"]
    return out


def _reading(text: str) -> Reading:
    """Return :meth:`Reading.parse` of ``text``, for argparse."""
    try:
        return Reading.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cross_validate(cases: list[Case], held: AnswerScores, reading: Reading, args: argparse.Namespace) -> list[Row]:
    """Return every case's held-out row: each fold ranked by models fitted on the other folds, reading ``reading``."""
    rows: list[Row] = []
    for fold in fold_articles(sorted({c.article for c in cases}), args.folds):
        train = [c for c in cases if c.article not in fold and (args.fit_library_offtopic or not _library_offtopic(c))]
        test = [c for c in cases if c.article in fold]
        ranker = fit_all(train, args.l2, args.c_value, held, args.keep_first_stage, reading)
        rows += held_out(test, ranker, held, reading)
        held.save()
    return rows


def report(
    rows: list[Row], articles: int, questions: int, reading: Reading, args: argparse.Namespace
) -> dict[str, float]:
    """Print the held-out figures of ``rows``: pooled (with the folds' spread), per mode, issue 24's targets; return
    the pooled ones (:func:`metrics` of every mode but :data:`SEPARATE_MODES`)."""
    print(
        f"{args.folds}-fold article-wise cross-validation ({articles} articles, {questions} questions, "
        f"threshold {args.threshold}, answer model reads {reading}); every number is on held-out articles, "
        "the answer-sentence model's included:"
    )
    fold_of_row = [fold_of(r["article"], args.folds) for r in rows]
    pooled = [r for r in rows if r["mode"] not in SEPARATE_MODES]
    cv = metrics(pooled, args.threshold)
    in_fold = [
        [r for r, f in zip(rows, fold_of_row, strict=True) if f == k and r["mode"] not in SEPARATE_MODES]
        for k in range(args.folds)
    ]
    per_fold = [metrics(chosen, args.threshold) for chosen in in_fold if any(r["answerable"] for r in chosen)]
    for key, value in cv.items():
        values = [f[key] for f in per_fold if key in f]
        print(f"  {key:22s} {value:.3f} (folds {min(values):.3f}-{max(values):.3f})")
    for mode in ("article", "library", *SEPARATE_MODES):
        chosen = [r for r in rows if r["mode"] == mode]
        if any(r["answerable"] for r in chosen):
            print(f"  {mode}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics(chosen, args.threshold).items()))
    print(f"  sentences read per question: {np.mean([r['read'] for r in rows]):.2f} on average")
    print("issue 24's targets, held out by article (benchmarks.targets):")
    print(targets.table(issue_measures(rows, args.threshold))[0])
    for threshold in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
        m = metrics(pooled, threshold)
        print(
            f"  threshold {threshold:.2f}: answerable_found {m['answerable_found']:.3f}, "
            f"offtopic_rejected {m['offtopic_rejected']:.3f}"
        )
    return cv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", type=Path)
    parser.add_argument("--squad2", type=Path, help="also ask this SQuAD 2.0 file's questions (same articles)")
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--C", type=float, default=1.0, dest="c_value")
    parser.add_argument("--offtopic", type=int, default=100, help="questions of other articles per article")
    parser.add_argument(
        "--library-offtopic",
        type=int,
        default=50,
        help="questions of each article asked of a library without its fold (off-topic in library mode)",
    )
    parser.add_argument(
        "--no-fit-library-offtopic",
        action="store_false",
        dest="fit_library_offtopic",
        help="ask the library's off-topic questions, but leave them out of the fits (to measure what they add)",
    )
    parser.add_argument("--threshold", type=float, default=0.3, help="the found cut-off (index.answer.MIN_SCORE)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "citebot-tune")
    parser.add_argument("--write", action="store_true", help=f"refit on everything and write {OUTPUT}")
    parser.add_argument("--per-article", action="store_true", help="fit on one-article libraries only")
    parser.add_argument(
        "--reading",
        type=_reading,
        action="append",
        help="what the answer model reads: sentences per first-stage paragraph rank, then the top N of each "
        "first-stage list, up to a limit, and @M: only the first when the first stage's first paragraph leads by M, "
        "e.g. 2,1 or 2,1+4/12 or 2,1+4/12@3 (default: the shipped ranker.json's); repeat it to "
        "compare readings on the same cases (--write fits the first)",
    )
    parser.add_argument(
        "--keep-first-stage",
        action="store_true",
        help="keep the shipped first-stage paragraph and sentence models; fit the second stage and the decision",
    )
    parser.add_argument(
        "--no-written",
        action="store_false",
        dest="written",
        help="leave out the hand-written questions (benchmarks/written_questions/), asked in mode 'written'",
    )
    parser.add_argument("--answer-models", type=Path, default=FOLD_MODELS, help="where the fold-K models are")
    args = parser.parse_args()
    readings = args.reading or [default_ranker().reading]
    cases = collect(
        args.squad,
        args.cache,
        args.offtopic,
        library=not args.per_article,
        squad2=args.squad2,
        folds=args.folds,
        library_offtopic=args.library_offtopic,
        hand_written=written.load() if args.written else None,
    )
    held = AnswerScores(args.folds, held_out=True, cache=args.cache, fold_models=args.answer_models)
    articles = sorted({c.article for c in cases})
    results = {}
    for reading in readings:
        results[reading] = report(cross_validate(cases, held, reading, args), len(articles), len(cases), reading, args)
    reading = readings[0]
    cv = results[reading]
    if args.write:
        # The second stage and the decision are fitted on held-out logits (each case scored by the fold model
        # that never saw it), which is how the shipped model's logits look on articles it never saw.
        ranker = fit_all(cases, args.l2, args.c_value, held, args.keep_first_stage, reading)
        ranker = Ranker(
            ranker.paragraph,
            ranker.sentence,
            ranker.rerank_paragraph,
            ranker.rerank_sentence,
            ranker.decision,
            reading=reading,
            about=(
                f"Fitted by benchmarks/tune.py on {args.squad.name}"
                f"{' and ' + args.squad2.name if args.squad2 else ''} ({len(articles)} articles, l2={args.l2}, "
                f"C={args.c_value}, answer model reads {reading}); {args.folds}-fold article-wise CV: "
                + ", ".join(f"{k} {v:.3f}" for k, v in cv.items())
            ),
        )
        OUTPUT.write_text(json.dumps(ranker.to_dict(), indent=1) + "\n")
        print(f"wrote {OUTPUT}")
    held.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
