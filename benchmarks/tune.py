"""Fit the ranker's parameters (index/data/ranker.json) on a SQuAD file, with article-wise cross-validation.

    .venv/bin/pip install -e '.[tune]'       # scikit-learn, only for this script
    .venv/bin/python benchmarks/tune.py ../shared/data/squad-v1.1-dev-A.json [--folds 6] [--write]

Every article is read, cleaned, split and embedded by citebot's own code
(:func:`index.evaluate.squad_to_article`, :func:`index.build.build_index`),
and every feature comes from :func:`index.ranker.features`, the function the
retriever calls at run time, so what is fitted is what runs.

Three models are fitted:

* paragraphs: a conditional logit (softmax over the article's paragraphs, L2),
  the answering paragraph(s) as the positive;
* sentences: the same over the sentences of the answering paragraph, the ones
  holding a gold answer string as the positives;
* the decision: a logistic regression (scikit-learn, balanced classes) of the
  article's questions against questions drawn from other articles.

Articles are split into ``--folds`` groups; each group is scored by models
fitted on the others, and those held-out numbers are what is printed. With
``--write`` the models are refitted on every article and written to
``index/data/ranker.json``. Embeddings are cached under ``--cache`` so a rerun
takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from index.background import background_vectors, measure
from index.build import build_index
from index.config import IndexConfig
from index.embed import Embedder
from index.evaluate import contains_answer, load_squad, map_paragraphs, offtopic_questions, squad_to_article
from index.ranker import (
    DECISION_FEATURES,
    PARAGRAPH_FEATURES,
    SENTENCE_FEATURES,
    Linear,
    Ranker,
    decision_features,
    features,
)
from index.retrieve import Retriever
from index.store import flat_index

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "index" / "data" / "ranker.json"


class CachedQueries:
    """Stands in for the embedder at question time: the questions were encoded in one batch."""

    def __init__(self, embedder: Embedder, vectors: dict[str, np.ndarray]) -> None:
        self._embedder = embedder
        self._vectors = vectors

    def encode_query(self, text: str) -> np.ndarray:
        return self._vectors[text]

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


@dataclass
class Case:
    """One question against one article, with its features and what is right."""

    article: int
    answerable: bool
    paragraphs: np.ndarray  # paragraph feature rows
    sentences: np.ndarray  # sentence feature rows
    sentence_paragraph: np.ndarray
    gold: tuple[int, ...]  # 0-based paragraphs
    sentence_hits: np.ndarray  # per sentence: holds a gold answer
    features: object  # index.ranker.Features
    background: object  # index.background.Background
    baseline_rank: np.ndarray  # the previous fusion's paragraph scores


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def collect(path: Path, cache: Path, offtopic: int) -> list[Case]:
    squad = load_squad(path)
    config = IndexConfig()
    embedder = Embedder(config.model)
    embedder.progress = False
    background = background_vectors(embedder)  # encoded now, by the real model, before _NoEncode stands in
    cache.mkdir(parents=True, exist_ok=True)
    questions = sorted(
        {q.question for a in squad for q in a.questions}
        | {t for i in range(len(squad)) for t in offtopic_questions(squad, i, offtopic, seed=1)}
    )
    qfile = cache / f"questions-{_cache_key(embedder.fingerprint, *questions)}.npy"
    if qfile.exists():
        qvec = np.load(qfile)
    else:
        print(f"encoding {len(questions)} questions", file=sys.stderr)
        qvec = embedder.encode(questions, batch_size=64)
        np.save(qfile, qvec)
    queries = CachedQueries(embedder, dict(zip(questions, qvec, strict=True)))
    cases: list[Case] = []
    for number, item in enumerate(squad):
        article = squad_to_article(item)
        mapping = map_paragraphs(article, item.contexts)
        afile = cache / f"article-{_cache_key(embedder.fingerprint, str(config.window), article.fingerprint)}.npz"
        if afile.exists():
            saved = np.load(afile)
            index = build_index(article, _NoEncode(embedder), config)
            index = type(index)(
                article=index.article,
                sentences=index.sentences,
                chunks=index.chunks,
                chunk_vectors=flat_index(saved["chunks"]),
                sentence_vectors=flat_index(saved["sentences"]),
                manifest=index.manifest,
                background=measure(np.vstack([saved["chunks"], saved["sentences"]]), background),
            )
        else:
            print(f"embedding {item.title}", file=sys.stderr)
            index = build_index(article, embedder, config)
            n = len(index.chunks)
            vectors = (
                index.chunk_vectors.reconstruct_n(0, n),
                index.sentence_vectors.reconstruct_n(0, index.sentence_vectors.ntotal),
            )
            np.savez(afile, chunks=vectors[0], sentences=vectors[1])
        retriever = Retriever(index, queries)  # type: ignore[arg-type]
        texts = [article.text[s.start : s.end] for s in index.sentences]
        asked = [(q.question, tuple(mapping[q.paragraph]), q.answers) for q in item.questions if not q.impossible]
        asked += [(t, (), ()) for t in offtopic_questions(squad, number, offtopic, seed=1)]
        for text, gold, answers in asked:
            ev = retriever.evidence(text)
            f = features(ev, retriever.stats, text)
            bm25 = ev.paragraph_bm25
            share = bm25 / bm25.max() if bm25.max() > 0 else bm25
            hits = np.array([contains_answer(t, answers) for t in texts], dtype=bool) if answers else None
            cases.append(
                Case(
                    article=number,
                    answerable=bool(answers),
                    paragraphs=f.paragraphs,
                    sentences=f.sentences,
                    sentence_paragraph=retriever.sentence_paragraph,
                    gold=gold,
                    sentence_hits=hits if hits is not None else np.zeros(len(texts), dtype=bool),
                    features=f,
                    background=index.background,
                    baseline_rank=ev.paragraph_dense + 0.3 * share,
                )
            )
    return cases


class _NoEncode:
    """An embedder whose vectors are thrown away (the cached ones replace them)."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        return np.zeros((len(texts), self._embedder.dimension), dtype=np.float32)

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


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


def sentence_groups(cases: list[Case]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    groups, positives = [], []
    for c in cases:
        if not c.answerable or not c.gold:
            continue
        members = np.flatnonzero(np.isin(c.sentence_paragraph, c.gold))
        hits = c.sentence_hits[members]
        if hits.any() and not hits.all():
            groups.append(c.sentences[members])
            positives.append(hits)
    return groups, positives


def paragraph_groups(cases: list[Case]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    groups, positives = [], []
    for c in cases:
        if c.answerable and c.gold:
            pos = np.zeros(len(c.paragraphs), dtype=bool)
            pos[list(c.gold)] = True
            groups.append(c.paragraphs)
            positives.append(pos)
    return groups, positives


def predict(c: Case, paragraph: Linear, sentence: Linear) -> tuple[np.ndarray, int, int | None]:
    scores = paragraph(c.paragraphs)
    order = np.argsort(-scores, kind="stable")
    top = int(order[0])
    members = np.flatnonzero(c.sentence_paragraph == top)
    best = int(members[np.argmax(sentence(c.sentences[members]))]) if len(members) else None
    return order, top, best


def fit_decision(cases: list[Case], paragraph: Linear, sentence: Linear, c_value: float) -> Linear:
    x = np.array([decision_features(c.features, *predict(c, paragraph, sentence)[1:], c.background) for c in cases])
    y = np.array([c.answerable for c in cases])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c_value, class_weight="balanced", max_iter=1000).fit((x - mean) / scale, y)
    return Linear(DECISION_FEATURES, mean, scale, model.coef_[0], float(model.intercept_[0]))


def fit_all(cases: list[Case], l2: float, c_value: float) -> Ranker:
    paragraph = fit_softmax(*paragraph_groups(cases), l2, PARAGRAPH_FEATURES)
    sentence = fit_softmax(*sentence_groups(cases), l2, SENTENCE_FEATURES)
    return Ranker(paragraph, sentence, fit_decision(cases, paragraph, sentence, c_value))


def held_out(cases: list[Case], ranker: Ranker) -> list[dict[str, float]]:
    """Return, per question, what the ranker does with it: the rank of the gold paragraph, the hit, the probability."""
    out = []
    for c in cases:
        order, top, best = predict(c, ranker.paragraph, ranker.sentence)
        rank = next((i for i, q in enumerate(order[:20]) if q in c.gold), None)
        out.append(
            {
                "answerable": c.answerable,
                "rank": rank,
                "highlight": best is not None and bool(c.sentence_hits[best]),
                "probability": ranker.probability(decision_features(c.features, top, best, c.background)),
                "previous_r1": int(np.argmax(c.baseline_rank)) in c.gold,
            }
        )
    return out


def metrics(rows: list[dict[str, float]], threshold: float) -> dict[str, float]:
    """Pool per-question results into the metrics of ``citebot eval``."""
    answerable = [r for r in rows if r["answerable"]]
    offtopic = [r for r in rows if not r["answerable"]]
    n = len(answerable)
    return {
        "paragraph_r1": sum(r["rank"] == 0 for r in answerable) / n,
        "paragraph_r3": sum(r["rank"] is not None and r["rank"] < 3 for r in answerable) / n,
        "mrr": sum(1 / (r["rank"] + 1) for r in answerable if r["rank"] is not None) / n,
        "answer_in_highlight": sum(r["highlight"] for r in answerable) / n,
        "answerable_found": sum(r["probability"] >= threshold for r in answerable) / n,
        "offtopic_rejected": sum(r["probability"] < threshold for r in offtopic) / max(len(offtopic), 1),
        "previous_fusion_r1": sum(r["previous_r1"] for r in answerable) / n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", type=Path)
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--C", type=float, default=1.0, dest="c_value")
    parser.add_argument("--offtopic", type=int, default=100, help="questions of other articles per article")
    parser.add_argument("--threshold", type=float, default=0.5, help="the found cut-off (index.answer.MIN_SCORE)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "citebot-tune")
    parser.add_argument("--write", action="store_true", help=f"refit on everything and write {OUTPUT}")
    args = parser.parse_args()
    cases = collect(args.squad, args.cache, args.offtopic)
    articles = sorted({c.article for c in cases})
    folds = [articles[i :: args.folds] for i in range(args.folds)]
    rows: list[dict[str, float]] = []
    per_fold = []
    for fold in folds:
        train = [c for c in cases if c.article not in fold]
        test = [c for c in cases if c.article in fold]
        fold_rows = held_out(test, fit_all(train, args.l2, args.c_value))
        rows += fold_rows
        per_fold.append(metrics(fold_rows, args.threshold))
    print(
        f"{args.folds}-fold article-wise cross-validation ({len(articles)} articles, {len(cases)} questions, "
        f"threshold {args.threshold}); every number is on held-out articles:"
    )
    cv = metrics(rows, args.threshold)
    for key, value in cv.items():
        spread = f"(folds {min(f[key] for f in per_fold):.3f}-{max(f[key] for f in per_fold):.3f})"
        print(f"  {key:22s} {value:.3f} {spread}")
    for threshold in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
        m = metrics(rows, threshold)
        print(
            f"  threshold {threshold:.2f}: answerable_found {m['answerable_found']:.3f}, "
            f"offtopic_rejected {m['offtopic_rejected']:.3f}"
        )
    if args.write:
        ranker = fit_all(cases, args.l2, args.c_value)
        ranker = Ranker(
            ranker.paragraph,
            ranker.sentence,
            ranker.decision,
            about=(
                f"Fitted by benchmarks/tune.py on {args.squad.name} ({len(articles)} articles, l2={args.l2}, "
                f"C={args.c_value}); {args.folds}-fold article-wise CV: "
                + ", ".join(f"{k} {v:.3f}" for k, v in cv.items())
            ),
        )
        OUTPUT.write_text(json.dumps(ranker.to_dict(), indent=1) + "\n")
        print(f"wrote {OUTPUT}")
        train = metrics(held_out(cases, ranker), args.threshold)
        print("training fit, for reference only:", json.dumps({k: round(v, 3) for k, v in train.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
