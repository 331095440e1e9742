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
from pathlib import Path
from typing import Any

import numpy as np

from index.answer import MAX_K, MIN_SCORE, answer
from index.build import open_article
from index.clean import normalize
from index.config import IndexConfig
from index.embed import Embedder
from index.errors import CitebotError
from index.ingest import Article, parse_article
from index.retrieve import Retriever

#: Questions of other articles asked against each article (fewer with ``limit``).
OFFTOPIC_PER_ARTICLE = 50
#: Methods measured by ``--baselines`` next to citebot itself.
BASELINES = ("bm25", "dense")

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
        ranked: 1-based paragraph numbers quoted, best first.
        gold: the 1-based paragraph(s) that answer it: one, or the pieces of a
            SQuAD paragraph that cleaning split; ``()`` when there is none.
        found: the answer's ``found`` (``None`` for baselines, which do not decide).
        in_quote: the first passage contains a gold answer string.
        in_highlight: the first passage's marked sentence contains one.
        ms: milliseconds the answer took (``0`` for baselines, which are not timed).
    """

    kind: str
    ranked: tuple[int, ...]
    gold: tuple[int, ...]
    found: bool | None
    in_quote: bool
    in_highlight: bool
    ms: float = 0.0


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


def reciprocal_rank(ranked: Sequence[int], gold: Collection[int]) -> float:
    """Return ``1 / position`` of the first of ``gold`` in ``ranked`` (1-based), or 0 when none is there."""
    for position, item in enumerate(ranked, start=1):
        if item in gold:
            return 1.0 / position
    return 0.0


def hit_at(ranked: Sequence[int], gold: Collection[int], k: int) -> bool:
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
    out: dict[str, Any] = {
        "questions": len(answerable),
        "paragraph_r1": _share(hit_at(o.ranked, o.gold, 1) for o in answerable),
        "paragraph_r3": _share(hit_at(o.ranked, o.gold, 3) for o in answerable),
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


def _baseline_outcome(
    retriever: Retriever, method: str, question: str, kind: str, gold: tuple[int, ...], answers: Sequence[str]
) -> Outcome:
    """Rank by BM25 alone or by the dense cosine alone, on the same paragraphs and sentences as citebot."""
    ev = retriever.evidence(question)
    if method == "bm25":
        paragraph_scores, sentence_scores = ev.paragraph_bm25, ev.sentence_bm25
    else:
        paragraph_scores, sentence_scores = ev.paragraph_dense, ev.sentence_cosine
    order = np.argsort(-paragraph_scores, kind="stable")[:MAX_K]
    top = int(order[0])
    article = retriever.index.article
    members = np.flatnonzero(retriever.sentence_paragraph == top)
    quote = article.paragraph(top)
    sentence = ""
    if len(members):
        best = retriever.index.sentences[int(members[np.argmax(sentence_scores[members])])]
        sentence = article.text[best.start : best.end]
    return Outcome(
        kind=kind,
        ranked=tuple(int(p) + 1 for p in order),
        gold=gold,
        found=None,
        in_quote=contains_answer(quote, answers),
        in_highlight=contains_answer(sentence, answers),
    )


def evaluate(
    path: str | Path,
    config: IndexConfig | None = None,
    embedder: Embedder | None = None,
    limit: int | None = None,
    baselines: bool = False,
    min_score: float = MIN_SCORE,
    offtopic: int = OFFTOPIC_PER_ARTICLE,
    progress: Callable[[int, int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Report:
    """Evaluate citebot on the SQuAD file at ``path``.

    Args:
        path: a SQuAD v1.1 or v2.0 JSON file.
        config: index settings (the default chunking when omitted); nothing is written to disk.
        embedder: the model; the default one is loaded when omitted.
        limit: ask at most this many questions per article (and as many off-topic ones at most).
        baselines: also measure BM25 alone and the dense cosine alone.
        min_score: the ``found`` cut-off handed to :func:`answer`.
        offtopic: questions of other articles asked against each article.
        progress: called with ``(questions_done, questions_total)`` as it goes.
        on_total: called once with the number of questions before the first is asked.
    """
    started = time.perf_counter()
    squad = load_squad(path)
    config = config or IndexConfig()
    embedder = embedder or Embedder(config.model)
    embedder.progress = False  # the caller shows one bar for the whole run
    plans = []
    for number, item in enumerate(squad):
        questions = list(item.questions[:limit] if limit else item.questions)
        others = offtopic_questions(squad, number, min(offtopic, limit) if limit else offtopic)
        plans.append((item, questions, others))
    total = sum(len(q) + len(o) for _, q, o in plans)
    if on_total:
        on_total(total)
    methods = ["citebot", *(BASELINES if baselines else ())]
    report = Report(source=str(path), articles=len(squad), outcomes={m: [] for m in methods})
    done = 0
    for item, questions, others in plans:
        article = squad_to_article(item)
        mapping = map_paragraphs(article, item.contexts)
        report.unmapped_paragraphs += sum(not m for m in mapping)
        built = time.perf_counter()
        retriever, _ = open_article(article, config, embedder, persist=False)
        report.build_seconds.append(time.perf_counter() - built)
        k = min(MAX_K, len(article.paragraphs))
        asked = [(q.question, UNANSWERABLE if q.impossible else ANSWERABLE, q) for q in questions]
        asked += [(text, OFFTOPIC, None) for text in others]
        for text, kind, q in asked:
            gold = tuple(i + 1 for i in mapping[q.paragraph]) if q is not None and kind == ANSWERABLE else ()
            golds = q.answers if q is not None else ()
            t0 = time.perf_counter()
            result = answer(retriever, text, k=k, min_score=min_score)
            ms = 1000 * (time.perf_counter() - t0)
            first = result.passages[0]
            report.outcomes["citebot"].append(
                Outcome(
                    kind=kind,
                    ranked=tuple(p.paragraph for p in result.passages),
                    gold=gold,
                    found=result.found,
                    in_quote=contains_answer(first.text, golds),
                    in_highlight=contains_answer(first.sentence, golds),
                    ms=ms,
                )
            )
            if kind == ANSWERABLE:
                for method in methods[1:]:
                    report.outcomes[method].append(_baseline_outcome(retriever, method, text, kind, gold, golds))
            done += 1
            if progress:
                progress(done, total)
    report.seconds = time.perf_counter() - started
    return report


LABELS = {
    "paragraph_r1": "paragraph R@1",
    "paragraph_r3": "paragraph R@3",
    "mrr": "MRR@20",
    "answer_in_quote": "answer in quote",
    "answer_in_highlight": "answer in highlight",
    "answerable_found": "answerable found",
    "offtopic_rejected": "off-topic rejected",
    "unanswerable_rejected": "unanswerable rejected",
    "latency_ms_p50": "latency p50 (ms)",
    "latency_ms_p95": "latency p95 (ms)",
}
