"""Evaluate: run citebot's own pipeline over a SQuAD-format file and measure its answers.

Each SQuAD article becomes one citebot article (its paragraphs joined by blank
lines, then read and cleaned exactly as a ``.txt`` file would be), is indexed in
memory, and every question is put to :func:`index.answer.answer`, the function
the console and the bots call. Questions of *other* articles are asked too:
the article does not answer them, so they must come back ``found: false``.

The metric functions (:func:`reciprocal_rank`, :func:`hit_at`,
:func:`contains_answer`, :func:`percentile`, :func:`summarize`) are pure.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from index.analysis.embed import Embedder
from index.answer import MAX_K, MIN_SCORE, UNCERTAIN_SCORE, clean_question, compose
from index.config import IndexConfig
from index.errors import CitebotError
from index.reading.article import Article
from index.reading.clean import normalize
from index.reading.ingest import parse_article
from index.search.library_index import ArticleData
from index.search.ranker import Linear
from index.search.retrieve import Candidates, Ranking, Searcher
from index.store.library import Library

#: Questions of other articles asked against each article (fewer with ``limit``).
OFFTOPIC_PER_ARTICLE = 50
#: Methods measured by ``--baselines`` next to citebot itself: BM25 alone, MiniLM alone, their
#: reciprocal-rank fusion (k = 60), all over the same articles, sentences and windows as citebot.
BASELINES = ("bm25", "dense", "rrf")
#: Library mode: every ``HOLDOUT_EVERY``-th article is kept out of the library; its questions are off-topic.
HOLDOUT_EVERY = 6
#: The constant of reciprocal-rank fusion.
RRF_K = 60

ANSWERABLE, OFFTOPIC, UNANSWERABLE = "answerable", "offtopic", "unanswerable"


@dataclass(frozen=True)
class SquadQuestion:
    """One SQuAD question: its gold answer strings and the (0-based) SQuAD paragraph it was asked on."""

    id: str
    question: str
    answers: tuple[str, ...]
    paragraph: int
    impossible: bool = False


@dataclass(frozen=True)
class SquadArticle:
    """One SQuAD article: its title, paragraph texts and questions."""

    title: str
    contexts: tuple[str, ...]
    questions: tuple[SquadQuestion, ...]


@dataclass(frozen=True)
class Outcome:
    """What happened to one question.

    Attributes:
        kind: ``"answerable"``, ``"offtopic"`` or ``"unanswerable"``.
        ranked: ``(article id, 1-based paragraph)`` of the passages quoted, best first.
        gold: the ``(article id, paragraph)`` that answer it: one, or the pieces of a
            SQuAD paragraph that cleaning split; ``()`` when there is none.
        found: the answer's ``found`` (``None`` for baselines, which do not decide).
        in_quote: the first passage contains a gold answer string.
        in_highlight: the first passage's marked sentence contains one.
        ms: milliseconds the answer took (``0`` for baselines, which are not timed).
        verdict: the answer's ``verdict`` (``None`` for baselines).
        found_before: what the decision shipped before the answerability signals said
            (:func:`decision_before`; ``None`` for baselines).
    """

    kind: str
    ranked: tuple[tuple[int, int], ...]
    gold: tuple[tuple[int, int], ...]
    found: bool | None
    in_quote: bool
    in_highlight: bool
    ms: float = 0.0
    verdict: str | None = None
    found_before: bool | None = None


@dataclass
class Report:
    """Everything one evaluation run measured."""

    source: str
    articles: int = 0
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    build_seconds: list[float] = field(default_factory=list)
    unmapped_paragraphs: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Return one JSON-ready object: settings, then each method's metrics."""
        return {
            "file": self.source,
            "articles": self.articles,
            "unmapped_paragraphs": self.unmapped_paragraphs,
            "index_build_seconds_mean": round(float(np.mean(self.build_seconds)), 3) if self.build_seconds else 0.0,
            "index_build_seconds_max": round(max(self.build_seconds), 3) if self.build_seconds else 0.0,
            "total_seconds": round(self.seconds, 1),
            "methods": {name: summarize(outcomes) for name, outcomes in self.outcomes.items()},
        }


# --- pure metric functions -------------------------------------------------------------------------

#: What a ranking ranks: a paragraph number, or an ``(article id, paragraph)`` pair.
_Item = TypeVar("_Item")


def reciprocal_rank(ranked: Sequence[_Item], gold: Collection[_Item]) -> float:
    """Return ``1 / position`` of the first of ``gold`` in ``ranked`` (1-based), or 0 when none is there."""
    for position, item in enumerate(ranked, start=1):
        if item in gold:
            return 1.0 / position
    return 0.0


def hit_at(ranked: Sequence[_Item], gold: Collection[_Item], k: int) -> bool:
    """Return whether one of ``gold`` is among the first ``k`` of ``ranked``."""
    return any(item in gold for item in ranked[:k])


def _canon(text: str) -> str:
    return " ".join(normalize(text).split())


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Return whether ``text`` contains any of ``answers`` (whitespace and Unicode normalised, case kept)."""
    haystack = _canon(text)
    return any((needle := _canon(a)) and needle in haystack for a in answers)


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of ``values`` by linear interpolation, 0 when empty."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _share(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else None


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Return the metrics of one method's outcomes.

    Ranking metrics (``paragraph_r1``, ``paragraph_r3``, ``mrr``) and answer
    metrics count answerable questions; ``offtopic_rejected`` and
    ``unanswerable_rejected`` count the share of those kinds answered ``found: false``.
    """
    answerable = [o for o in outcomes if o.kind == ANSWERABLE]
    offtopic = [o for o in outcomes if o.kind == OFFTOPIC]
    unanswerable = [o for o in outcomes if o.kind == UNANSWERABLE]
    timed = [o.ms for o in outcomes if o.ms > 0]
    decided = [o for o in outcomes if o.verdict is not None]
    out: dict[str, Any] = {
        "questions": len(answerable),
        "paragraph_r1": _share(hit_at(o.ranked, o.gold, 1) for o in answerable),
        "paragraph_r3": _share(hit_at(o.ranked, o.gold, 3) for o in answerable),
        "article_r1": _share(
            o.ranked[0][0] == o.gold[0][0] for o in answerable if o.ranked and o.gold and isinstance(o.ranked[0], tuple)
        ),
        "mrr": round(float(np.mean([reciprocal_rank(o.ranked, o.gold) for o in answerable])), 4)
        if answerable
        else None,
        "answer_in_quote": _share(o.in_quote for o in answerable),
        "answer_in_highlight": _share(o.in_highlight for o in answerable),
        "answerable_found": _share(o.found for o in answerable if o.found is not None),
        "offtopic_questions": len(offtopic),
        "offtopic_rejected": _share(not o.found for o in offtopic),
    }
    if unanswerable:
        out["unanswerable_questions"] = len(unanswerable)
        out["unanswerable_rejected"] = _share(not o.found for o in unanswerable)
    if decided:
        for kind, group in ((ANSWERABLE, answerable), (OFFTOPIC, offtopic), (UNANSWERABLE, unanswerable)):
            if group:
                out[f"{kind}_uncertain"] = _share(o.verdict == "uncertain" for o in group)
        before = [o for o in outcomes if o.found_before is not None]
        if before:
            out["answerable_found_before"] = _share(bool(o.found_before) for o in before if o.kind == ANSWERABLE)
            out["offtopic_rejected_before"] = _share(not o.found_before for o in before if o.kind == OFFTOPIC)
            if unanswerable:
                out["unanswerable_rejected_before"] = _share(
                    not o.found_before for o in before if o.kind == UNANSWERABLE
                )
    if timed:
        out["latency_ms_p50"] = round(percentile(timed, 50), 2)
        out["latency_ms_p95"] = round(percentile(timed, 95), 2)
    return out


# --- reading SQuAD and building articles -----------------------------------------------------------


def load_squad(path: str | Path) -> list[SquadArticle]:
    """Read a SQuAD v1.1 or v2.0 JSON file.

    Raises:
        CitebotError: when the file is missing or not in SQuAD's format.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        articles = []
        for entry in data["data"]:
            contexts, questions = [], []
            for number, paragraph in enumerate(entry["paragraphs"]):
                contexts.append(paragraph["context"])
                for qa in paragraph["qas"]:
                    questions.append(
                        SquadQuestion(
                            id=str(qa.get("id", "")),
                            question=qa["question"],
                            answers=tuple(a["text"] for a in qa.get("answers", [])),
                            paragraph=number,
                            impossible=bool(qa.get("is_impossible", False)),
                        )
                    )
            articles.append(SquadArticle(str(entry.get("title", "")), tuple(contexts), tuple(questions)))
    except FileNotFoundError:
        raise CitebotError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CitebotError(f"{p}: not a SQuAD JSON file ({type(exc).__name__}: {exc})") from None
    if not articles:
        raise CitebotError(f"{p}: holds no articles")
    return articles


def map_paragraphs(article: Article, contexts: Sequence[str]) -> list[tuple[int, ...]]:
    """Return, for each SQuAD context, the 0-based citebot paragraphs that hold its text.

    Matching is by text, not by position: a context that came through cleaning
    whole maps to its paragraph; one merged into a larger paragraph maps to that
    one; one that cleaning split (a line break inside it, as in "O\\n2") maps to
    all its pieces; one that cleaning dropped maps to ``()``.
    """
    cleaned = [_canon(article.paragraph(i)) for i in range(len(article.paragraphs))]
    exact: dict[str, int] = {}
    for number, text in enumerate(cleaned):
        exact.setdefault(text, number)
    out: list[tuple[int, ...]] = []
    cursor = 0
    for context in contexts:
        key = _canon(context)
        match: tuple[int, ...] = ()
        if key in exact:
            match = (exact[key],)
        elif key:
            order = [*range(cursor, len(cleaned)), *range(cursor)]
            match = next(((i,) for i in order if key in cleaned[i]), ()) or _pieces(cleaned, key, order)
        out.append(match)
        if match:
            cursor = match[-1]
    return out


def _pieces(cleaned: Sequence[str], key: str, order: Iterable[int]) -> tuple[int, ...]:
    """Return consecutive paragraphs whose texts, joined by spaces, are exactly ``key``, or ``()``."""
    for first in order:
        if not cleaned[first] or not key.startswith(cleaned[first]):
            continue
        joined, last = cleaned[first], first
        while joined != key and last + 1 < len(cleaned) and key.startswith(f"{joined} {cleaned[last + 1]}"):
            last += 1
            joined = f"{joined} {cleaned[last]}"
        if joined == key:
            return tuple(range(first, last + 1))
    return ()


def squad_to_article(squad: SquadArticle) -> Article:
    """Join the article's paragraphs with blank lines and read them as citebot reads a ``.txt`` file."""
    raw = "\n\n".join(squad.contexts)
    return parse_article(raw.encode("utf-8"), name=f"{squad.title or 'squad'}.txt", source=squad.title)


def offtopic_questions(articles: Sequence[SquadArticle], number: int, count: int, seed: int = 0) -> list[str]:
    """Return ``count`` answerable questions drawn (with a fixed seed) from articles other than ``number``."""
    pool = [q.question for i, a in enumerate(articles) if i != number for q in a.questions if not q.impossible]
    rng = random.Random(f"{seed}:{number}:{articles[number].title}")
    return rng.sample(pool, min(count, len(pool)))


# --- running -----------------------------------------------------------------------------------------


def baseline_rankings(searcher: Searcher, question: str) -> dict[str, list[tuple[ArticleData, int, int | None]]]:
    """Rank every paragraph of the library by BM25 alone, the dense cosine alone and their fusion.

    Returns, per method, the first :data:`MAX_K` ``(article, paragraph, best sentence)`` (the sentence
    picked by the same method; article-wide number), over the same sentences and windows citebot uses.
    """
    lib = searcher.index
    c = searcher.candidates(question)
    known = c.unique_ids >= 0
    bm25 = np.zeros(len(lib.alive))
    if known.any():
        query = np.repeat(c.unique_ids[known], c.multiplicity[known].astype(np.int64))
        idf = np.repeat(c.weights[known], c.multiplicity[known].astype(np.int64))
        bm25 = lib.postings.bm25(query, idf, lib.paragraph_length, c.paragraph_average)
    bm25 = np.where(lib.alive, bm25, -np.inf)
    dense = np.full(len(lib.alive), -np.inf)
    best_sentence: dict[tuple[int, int], int] = {}
    q = searcher.encode(question)
    for data in lib.articles.values():
        cos = data.vectors @ q
        base = lib.base[data.key]
        for p in range(len(data.paragraphs)):
            a, b = int(data.paragraph_sentences[p]), int(data.paragraph_sentences[p + 1])
            lo, hi = np.searchsorted(data.chunk_first, [a, b])
            cumulative = np.concatenate([[0.0], np.cumsum(cos[a:b], dtype=np.float64)])
            chunks = (cumulative[data.chunk_last[lo:hi] - a] - cumulative[data.chunk_first[lo:hi] - a]) * (
                data.chunk_inverse_norm[lo:hi]
            )
            dense[base + p] = max(float(cos[a:b].max(initial=-1.0)), float(chunks.max(initial=-1.0)))
            best_sentence[(data.key, p)] = a + int(np.argmax(cos[a:b])) if b > a else -1
    rrf = np.zeros(len(lib.alive))
    for scores in (bm25, dense):
        by_score = np.argsort(-scores, kind="stable")
        rrf[by_score] += 1.0 / (RRF_K + np.arange(1, len(by_score) + 1))
    rrf = np.where(lib.alive, rrf, -np.inf)
    out: dict[str, list[tuple[ArticleData, int, int | None]]] = {}
    for method, scores in (("bm25", bm25), ("dense", dense), ("rrf", rrf)):
        order = [int(i) for i in np.argsort(-scores, kind="stable")[:MAX_K] if np.isfinite(scores[i])]
        picked: list[tuple[ArticleData, int, int | None]] = []
        for number in order:
            data = lib.articles[int(lib.paragraph_key[number])]
            p = int(lib.paragraph_local[number])
            if method == "dense":
                sentence: int | None = best_sentence.get((data.key, p))
            else:
                one = Candidates(
                    [(data, p)],
                    c.unique_ids,
                    c.multiplicity,
                    c.weights,
                    c.known,
                    c.sentence_idf,
                    c.sentence_average,
                    c.paragraph_average,
                    c.articles,
                )
                ev, numbers = searcher.evidence(question, one)
                sentence = int(numbers[int(np.argmax(ev.sentence_bm25))]) if len(numbers) else None
            picked.append((data, p, sentence))
        out[method] = picked
    return out


def _baseline_outcome(
    picked: list[tuple[ArticleData, int, int | None]],
    kind: str,
    gold: tuple[tuple[int, int], ...],
    answers: Sequence[str],
) -> Outcome:
    """Return the outcome of one baseline's ranking (see :func:`baseline_rankings`)."""
    data, p, sentence = picked[0]
    quote = data.paragraph_text(p)
    marked = data.sentence_text(sentence) if sentence is not None and sentence >= 0 else ""
    return Outcome(
        kind=kind,
        ranked=tuple((d.record.id, q + 1) for d, q, _ in picked),
        gold=gold,
        found=None,
        in_quote=contains_answer(quote, answers),
        in_highlight=contains_answer(marked, answers),
    )


def evaluate(
    path: str | Path,
    config: IndexConfig | None = None,
    embedder: Embedder | None = None,
    limit: int | None = None,
    baselines: bool = False,
    min_score: float = MIN_SCORE,
    uncertain_score: float = UNCERTAIN_SCORE,
    offtopic: int = OFFTOPIC_PER_ARTICLE,
    progress: Callable[[int, int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    library: bool = False,
    directory: Path | None = None,
) -> Report:
    """Evaluate citebot on the SQuAD file at ``path``.

    Args:
        path: a SQuAD v1.1 or v2.0 JSON file.
        config: index settings (the default chunking when omitted); nothing is written to disk.
        embedder: the model; the default one is loaded when omitted.
        limit: ask at most this many questions per article (and as many off-topic ones at most).
        baselines: also measure BM25 alone, the dense cosine alone and their fusion.
        min_score: the ``found`` cut-off handed to :func:`index.answer.answer`.
        uncertain_score: the "uncertain" / "unanswered" cut-off, likewise.
        offtopic: questions of other articles asked against each article (per held-out article in
            library mode).
        progress: called with ``(questions_done, questions_total)`` as it goes.
        on_total: called once with the number of questions before the first is asked.
        library: put the articles into one library (all but every :data:`HOLDOUT_EVERY`-th, whose
            questions are the off-topic ones) and ask every question of the whole library, instead of
            one library per article.
        directory: with ``library``, keep that library on disk in this (new) data directory instead of in memory,
            so that it is searched as ``config.search`` says (a library in memory is always searched locally).
    """
    if directory is not None and not library:
        raise ValueError("directory is for library=True (one library on disk)")
    started = time.perf_counter()
    squad = load_squad(path)
    config = config or IndexConfig()
    config = IndexConfig(**{**config.__dict__, "seed": False})
    embedder = embedder or Embedder(config.model, runtime=config.runtime)
    embedder.progress = False  # the caller shows one bar for the whole run
    methods = ["citebot", *(BASELINES if baselines else ())]
    report = Report(source=str(path), articles=len(squad), outcomes={m: [] for m in methods})
    # (library, questions): each question is (text, kind, gold, answers)
    plans: list[tuple[list[tuple[int, SquadArticle]], list[tuple[str, str, int | None, SquadQuestion | None]]]] = []
    if library:
        members = [
            (n, a) for n, a in enumerate(squad) if len(squad) < HOLDOUT_EVERY or n % HOLDOUT_EVERY != HOLDOUT_EVERY - 1
        ]
        held = [(n, a) for n, a in enumerate(squad) if (n, a) not in members]
        asked: list[tuple[str, str, int | None, SquadQuestion | None]] = []
        for n, item in members:
            for q in item.questions[:limit] if limit else item.questions:
                asked.append((q.question, UNANSWERABLE if q.impossible else ANSWERABLE, n, q))
        rng = random.Random(f"library:{path}")
        for _, item in held:
            pool = [q.question for q in item.questions if not q.impossible]
            for text in rng.sample(pool, min(min(offtopic, limit) if limit else offtopic, len(pool))):
                asked.append((text, OFFTOPIC, None, None))
        plans.append((members, asked))
    else:
        for number, item in enumerate(squad):
            questions = list(item.questions[:limit] if limit else item.questions)
            others = offtopic_questions(squad, number, min(offtopic, limit) if limit else offtopic)
            asked = [(q.question, UNANSWERABLE if q.impossible else ANSWERABLE, number, q) for q in questions]
            asked += [(text, OFFTOPIC, None, None) for text in others]
            plans.append(([(number, item)], asked))
    total = sum(len(asked) for _, asked in plans)
    if on_total:
        on_total(total)
    done = 0
    before = decision_before()
    for members, asked in plans:
        lib = Library(directory, IndexConfig(**{**config.__dict__, "data_dir": directory}) if directory else config)
        searcher = Searcher(lib, embedder)
        ids: dict[int, int] = {}
        mappings: dict[int, list[tuple[int, ...]]] = {}
        for number, item in members:
            article = squad_to_article(item)
            mappings[number] = map_paragraphs(article, item.contexts)
            report.unmapped_paragraphs += sum(not m for m in mappings[number])
            built = time.perf_counter()
            ids[number] = lib.add(article, embedder).record.id
            report.build_seconds.append(time.perf_counter() - built)
        paragraphs = searcher.index.paragraphs
        k = min(MAX_K, paragraphs)
        for text, kind, owner, asked_q in asked:
            gold: tuple[tuple[int, int], ...] = ()
            if asked_q is not None and owner is not None and kind == ANSWERABLE:
                gold = tuple((ids[owner], i + 1) for i in mappings[owner][asked_q.paragraph])
            golds = asked_q.answers if asked_q is not None else ()
            t0 = time.perf_counter()
            question = clean_question(text)  # what index.answer.answer does, kept apart to read the ranking
            ranking = searcher.rank(question)
            result = compose(question, ranking, k, min_score, uncertain_score)
            ms = 1000 * (time.perf_counter() - t0)
            first = result.passages[0]
            report.outcomes["citebot"].append(
                Outcome(
                    kind=kind,
                    ranked=tuple((p.article.id, p.paragraph) for p in result.passages),
                    gold=gold,
                    found=result.found,
                    in_quote=contains_answer(first.text, golds),
                    in_highlight=contains_answer(first.sentence, golds),
                    ms=ms,
                    verdict=result.verdict,
                    found_before=_probability(before, ranking) >= BEFORE_MIN_SCORE,
                )
            )
            if kind == ANSWERABLE and len(methods) > 1:
                rankings = baseline_rankings(searcher, text)
                for method in methods[1:]:
                    report.outcomes[method].append(_baseline_outcome(rankings[method], kind, gold, golds))
            done += 1
            if progress:
                progress(done, total)
        searcher.index.close()
        lib.close()
    report.seconds = time.perf_counter() - started
    return report


#: The cut-off the decision before the answerability signals was used with.
BEFORE_MIN_SCORE = 0.5


def decision_before() -> Linear:
    """Return the found/not-found model shipped before the answerability signals (``index/data/decision_before.json``).

    ``citebot eval`` reports its decisions beside the current ones; it reads
    only features the current decision still computes, by name.
    """
    text = (resources.files("index") / "data" / "decision_before.json").read_text(encoding="utf-8")
    data = json.loads(text)["decision"]
    return Linear.from_dict(data, tuple(data["features"]))


def _probability(model: Linear, ranking: Ranking) -> float:
    """Return ``model``'s probability from the ranking's named decision features (0 when there are none)."""
    if not ranking.decision:
        return 0.0
    x = np.array([ranking.decision[name] for name in model.names], dtype=np.float64)
    return float(1.0 / (1.0 + np.exp(-float(model(x)))))


LABELS = {
    "paragraph_r1": "paragraph R@1",
    "paragraph_r3": "paragraph R@3",
    "article_r1": "article R@1",
    "mrr": "MRR@20",
    "answer_in_quote": "answer in quote",
    "answer_in_highlight": "answer in highlight",
    "answerable_found": "answerable found",
    "offtopic_rejected": "off-topic rejected",
    "unanswerable_rejected": "unanswerable rejected",
    "answerable_uncertain": "answerable uncertain",
    "offtopic_uncertain": "off-topic uncertain",
    "unanswerable_uncertain": "unanswerable uncertain",
    "answerable_found_before": "answerable found, decision before",
    "offtopic_rejected_before": "off-topic rejected, decision before",
    "unanswerable_rejected_before": "unanswerable rejected, decision before",
    "latency_ms_p50": "latency p50 (ms)",
    "latency_ms_p95": "latency p95 (ms)",
}
