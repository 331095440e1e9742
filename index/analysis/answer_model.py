"""The answer-sentence model: does this sentence answer this question? One logit per pair, on onnxruntime.

A small cross-encoder (all six layers of all-MiniLM-L6-v2, fine-tuned on SQuAD by
``benchmarks/answer_model.py``; see ``index/data/answer_model/about.json`` for what it was trained on and how)
reads the question and a candidate sentence together. The searcher (:mod:`index.search.retrieve`) runs it on
the few best candidate sentences only, and its logit weighs in the marked sentence, the paragraph order and the
verdict. It ships inside the package as an int8 ONNX graph with its tokenizer: nothing is downloaded, and
neither torch nor transformers is imported.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.analysis.onnx_model import sha256_of
from index.errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Where the shipped model lives (inside the package).
DEFAULT_DIRECTORY = Path(str(resources.files("index") / "data" / "answer_model"))
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
#: What the model was trained on and how, and the size and SHA-256 of :data:`CHECKED_FILES` (checked at every load).
ABOUT_FILE = "about.json"
CHECKED_FILES = (MODEL_FILE, TOKENIZER_FILE)
#: What to do about a damaged answer-sentence model: its files ship inside the package.
REPAIR = "reinstall citebot (scripts/setup in a source checkout)"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "logit"
#: A question and a sentence together are cut to this many tokens (the longer one loses the excess).
MAX_TOKENS = 128


def file_records(directory: Path) -> dict[str, dict[str, int | str]]:
    """Return the size and SHA-256 of each of :data:`CHECKED_FILES` in ``directory`` (as ``about.json`` records)."""
    return {
        name: {"size": (directory / name).stat().st_size, "sha256": sha256_of(directory / name)}
        for name in CHECKED_FILES
    }


def damage(directory: Path) -> str | None:
    """Return what is wrong with the model files in ``directory`` (``None``: each matches ``about.json``'s record).

    Hashes the files (23 MB: about 0.02 s), so a truncated, altered or replaced file is found without loading it.
    """
    try:
        recorded = json.loads((directory / ABOUT_FILE).read_text(encoding="utf-8"))["files"]
        expected = {name: (int(recorded[name]["size"]), str(recorded[name]["sha256"])) for name in CHECKED_FILES}
    except FileNotFoundError:
        return f"{ABOUT_FILE} is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{ABOUT_FILE} is damaged (it does not record the files' checksums)"
    for name, (size, sha256) in expected.items():
        path = directory / name
        try:
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size or sha256_of(path) != sha256:
                return f"{name} does not match its SHA-256 in {ABOUT_FILE}"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
    return None


class AnswerModel:
    """Scores (question, sentence) pairs with the answer-sentence model.

    Args:
        directory: holds :data:`MODEL_FILE` and :data:`TOKENIZER_FILE`.
        threads: CPU threads of the session (one, the default, is fastest for one question on a busy machine).
        verify: check the files against the checksums in ``about.json`` first (:func:`damage`).

    Raises:
        ModelError: when the files are missing, damaged or not a model.
    """

    def __init__(self, directory: Path = DEFAULT_DIRECTORY, threads: int = 1, verify: bool = True) -> None:
        if verify and (wrong := damage(directory)) is not None:
            raise ModelError(f"the answer-sentence model in {directory} is damaged ({wrong}); {REPAIR}")
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime
        from tokenizers import Tokenizer

        try:
            self.tokenizer: Tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting
            self.session = onnxruntime.InferenceSession(
                str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime and tokenizers raise their own types for a bad file
            reason = f"it does not load: {type(exc).__name__}"
            raise ModelError(f"the answer-sentence model in {directory} is damaged ({reason}); {REPAIR}") from None
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS, strategy="longest_first")
        self.tokenizer.no_padding()

    def score(self, question: str, sentences: list[str]) -> np.ndarray:
        """Return one logit per sentence (float64): above 0, the model thinks it answers ``question``.

        Each pair runs alone: the int8 graph quantises its activations per run, so in a batch a sentence's logit
        would depend on the others beside it (by up to a tenth), and a padded batch saves nothing for a handful.
        """
        out = np.zeros(len(sentences), dtype=np.float64)
        if not sentences:
            return out
        question = question.lower()
        for row, encoding in enumerate(self.tokenizer.encode_batch([(question, s.lower()) for s in sentences])):
            feed = {
                "input_ids": np.array([encoding.ids], dtype=np.int64),
                "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
            }
            (logit,) = self.session.run([OUTPUT], feed)
            out[row] = float(np.asarray(logit).reshape(-1)[0])
        return out


@lru_cache(maxsize=1)
def default_answer_model() -> AnswerModel:
    """Return the shipped answer-sentence model, loaded once per process."""
    return AnswerModel(DEFAULT_DIRECTORY)
