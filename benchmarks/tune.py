"""Fit the ranker's parameters (index/data/ranker.json) on a SQuAD file, with article-wise cross-validation.

    .venv/bin/pip install -e '.[tune]'       # scikit-learn, only for this script
    .venv/bin/python benchmarks/tune.py ../shared/data/squad-v1.1-dev-A.json [--folds 6] [--write]

Every article is read, cleaned, split and embedded by citebot's own code
(:func:`index.evaluate.squad_to_article`, :meth:`index.store.library.Library.add`),
and every feature comes from :meth:`index.search.retrieve.Searcher.evidence` and
:func:`index.search.features.features`, what runs at question time, so what is fitted is what runs.
Questions are asked two ways: of a library holding only their article, and of one library
holding every article of the file (library search), and both are fitted together.

Three models are fitted:

* paragraphs: a conditional logit (softmax over the candidate paragraphs, L2),
  the answering paragraph(s) as the positive;
* sentences: the same over the sentences of the answering paragraph, the ones
  holding a gold answer string as the positives;
* the decision: a logistic regression (scikit-learn, balanced classes) of the
  article's questions against questions drawn from other articles.

Articles are split into ``--folds`` groups; each group is scored by models
fitted on the others, and those held-out numbers are what is printed. With
``--write`` the models are refitted on every article and written to
``index/data/ranker.json``. Embeddings are cached under ``--cache`` so a rerun
is quicker.
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

from index.analysis.background import Background
from index.analysis.embed import Embedder
from index.analysis.words import tokenize
from index.config import IndexConfig
from index.evaluate import contains_answer, load_squad, map_paragraphs, offtopic_questions, squad_to_article
from index.search.answerability import Collection as TermWeights
from index.search.answerability import signals
from index.search.features import (
    DECISION_FEATURES,
    PARAGRAPH_FEATURES,
    SENTENCE_FEATURES,
    Features,
    decision_features,
    features,
)
from index.search.ranker import Linear, Ranker
from index.search.retrieve import Searcher
from index.store.library import Library

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "index" / "data" / "ranker.json"


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

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            print(f"embedding {len(missing)} texts", file=sys.stderr)
            for text, vector in zip(missing, self._embedder.encode(missing, batch_size=64), strict=True):
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

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


@dataclass
class Case:
    """One question against a library (one article's, or all of them), with its features and what is right."""

    article: int  # the SQuAD article the question is from (for folds)
    mode: str  # "article" or "library"
    answerable: bool
    paragraphs: np.ndarray  # candidate paragraph feature rows
    sentences: np.ndarray  # sentence feature rows
    sentence_paragraph: np.ndarray
    gold: tuple[int, ...]  # candidate numbers of the answering paragraph(s)
    article_of: np.ndarray  # per candidate, the SQuAD article it is from
    sentence_hits: np.ndarray  # per sentence: holds a gold answer
    features: Features
    backgrounds: list[Background]  # per candidate
    question: str = ""
    pairs: list = None  # type: ignore[assignment]  # per candidate, (ArticleData, paragraph)
    numbers: np.ndarray = None  # type: ignore[assignment]  # per sentence, its article-wide number
    weights: TermWeights = None  # type: ignore[assignment]

    def signals(self, top: int, best: int | None) -> dict[str, float]:
        """Return the answerability signals of candidate ``top`` with ``best`` as its marked sentence."""
        data, paragraph = self.pairs[top]
        sentence = data.sentence_text(int(self.numbers[best])) if best is not None else ""
        return signals(self.question, sentence, data.paragraph_text(paragraph), self.weights, tokenize(self.question))


def _cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _cases(
    searcher: Searcher,
    number_of: dict[int, int],
    asked: list[tuple[str, int, tuple[tuple[int, int], ...], tuple]],
    mode: str,
) -> list[Case]:
    out = []
    for text, article, gold, answers in asked:
        c = searcher.candidates(text)
        ev, numbers = searcher.evidence(text, c)
        f = features(ev, text)
        pairs = [(number_of[data.key], p) for data, p in c.pairs]
        gold_at = tuple(i for i, pair in enumerate(pairs) if pair in gold)
        hits = np.zeros(len(numbers), dtype=bool)
        if answers:
            for i, (local, number) in enumerate(zip(ev.sentence_paragraph, numbers, strict=True)):
                if local in gold_at:
                    hits[i] = contains_answer(c.pairs[local][0].sentence_text(int(number)), answers)
        out.append(
            Case(
                article=article,
                mode=mode,
                answerable=bool(answers),
                paragraphs=f.paragraphs,
                sentences=f.sentences,
                sentence_paragraph=ev.sentence_paragraph,
                gold=gold_at,
                article_of=np.array([a for a, _ in pairs]),
                sentence_hits=hits,
                features=f,
                backgrounds=[data.background for data, _ in c.pairs],
                question=text,
                pairs=c.pairs,
                numbers=numbers,
                weights=TermWeights(
                    {t: float(w) for t, w, k in zip(c.terms, c.weights, c.known, strict=True) if k}, c.unknown_weight
                ),
            )
        )
    return out


def collect(path: Path, cache: Path, offtopic: int, library: bool = True) -> list[Case]:
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
        cases += _cases(Searcher(one, embedder), {key: number}, asked, "article")  # type: ignore[arg-type]
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


def _decision_row(c: Case, paragraph: Linear, sentence: Linear) -> np.ndarray:
    _, top, best = predict(c, paragraph, sentence)
    return decision_features(c.features, top, best, c.backgrounds[top], c.signals(top, best))


def fit_decision(cases: list[Case], paragraph: Linear, sentence: Linear, c_value: float) -> Linear:
    x = np.array([_decision_row(c, paragraph, sentence) for c in cases])
    y = np.array([c.answerable for c in cases])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c_value, class_weight="balanced", max_iter=1000).fit((x - mean) / scale, y)
    return Linear(DECISION_FEATURES, mean, scale, model.coef_[0], float(model.intercept_[0]))


def shipped_decision() -> Linear:
    """Return the found/not-found model in ``index/data/ranker.json`` (read alone: the rest may be refitted)."""
    data = json.loads(OUTPUT.read_text())
    return Linear.from_dict(data["decision"], DECISION_FEATURES)


def _shipped_about() -> str:
    return str(json.loads(OUTPUT.read_text()).get("about", ""))


def fit_all(cases: list[Case], l2: float, c_value: float, keep_decision: bool = False) -> Ranker:
    paragraph = fit_softmax(*paragraph_groups(cases), l2, PARAGRAPH_FEATURES)
    sentence = fit_softmax(*sentence_groups(cases), l2, SENTENCE_FEATURES)
    if keep_decision:
        return Ranker(paragraph, sentence, shipped_decision())
    return Ranker(paragraph, sentence, fit_decision(cases, paragraph, sentence, c_value))


def held_out(cases: list[Case], ranker: Ranker) -> list[dict[str, float]]:
    """Return, per question, what the ranker does with it: the rank of the gold paragraph, the hit, the probability."""
    out = []
    for c in cases:
        order, top, best = predict(c, ranker.paragraph, ranker.sentence)
        rank = next((i for i, q in enumerate(order[:20]) if q in c.gold), None)
        out.append(
            {
                "mode": c.mode,
                "answerable": c.answerable,
                "rank": rank,
                "article_hit": bool(c.article_of[top] == c.article),
                "highlight": best is not None and bool(c.sentence_hits[best]),
                "probability": ranker.confidence(
                    decision_features(c.features, top, best, c.backgrounds[top], c.signals(top, best))
                ),
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
        "article_r1": sum(r["article_hit"] for r in answerable) / n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("squad", type=Path)
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--C", type=float, default=1.0, dest="c_value")
    parser.add_argument("--offtopic", type=int, default=100, help="questions of other articles per article")
    parser.add_argument("--threshold", type=float, default=0.3, help="the found cut-off (index.answer.MIN_SCORE)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "citebot-tune")
    parser.add_argument("--write", action="store_true", help=f"refit on everything and write {OUTPUT}")
    parser.add_argument("--per-article", action="store_true", help="fit on one-article libraries only")
    parser.add_argument(
        "--compare", type=Path, metavar="RANKER_JSON", help="also score these fitted weights (no fitting) on every case"
    )
    parser.add_argument(
        "--keep-decision",
        action="store_true",
        help="refit the paragraph and sentence models only; keep the shipped found/not-found decision",
    )
    args = parser.parse_args()
    cases = collect(args.squad, args.cache, args.offtopic, library=not args.per_article)
    if args.compare:
        other = Ranker.from_dict(json.loads(args.compare.read_text()))
        rows = held_out(cases, other)
        print(f"{args.compare} on every case (as fitted, not held out):")
        for mode in ("article", "library"):
            chosen = [r for r in rows if r["mode"] == mode]
            print(f"  {mode} search: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics(chosen, args.threshold).items()))
    articles = sorted({c.article for c in cases})
    folds = [articles[i :: args.folds] for i in range(args.folds)]
    rows: list[dict[str, float]] = []
    per_fold = []
    for fold in folds:
        train = [c for c in cases if c.article not in fold]
        test = [c for c in cases if c.article in fold]
        fold_rows = held_out(test, fit_all(train, args.l2, args.c_value, args.keep_decision))
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
    for mode in ("article", "library"):
        chosen = [r for r in rows if r["mode"] == mode]
        if any(r["answerable"] for r in chosen):
            print(f"  {mode} search: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics(chosen, args.threshold).items()))
    for threshold in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
        m = metrics(rows, threshold)
        print(
            f"  threshold {threshold:.2f}: answerable_found {m['answerable_found']:.3f}, "
            f"offtopic_rejected {m['offtopic_rejected']:.3f}"
        )
    if args.write:
        ranker = fit_all(cases, args.l2, args.c_value, args.keep_decision)
        ranker = Ranker(
            ranker.paragraph,
            ranker.sentence,
            ranker.decision,
            about=(
                f"Fitted by benchmarks/tune.py on {args.squad.name} ({len(articles)} articles, l2={args.l2}, "
                f"C={args.c_value}{', decision kept: ' + _shipped_about() if args.keep_decision else ''}); "
                f"{args.folds}-fold article-wise CV: " + ", ".join(f"{k} {v:.3f}" for k, v in cv.items())
            ),
        )
        OUTPUT.write_text(json.dumps(ranker.to_dict(), indent=1) + "\n")
        print(f"wrote {OUTPUT}")
        train = metrics(held_out(cases, ranker), args.threshold)
        print("training fit, for reference only:", json.dumps({k: round(v, 3) for k, v in train.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
