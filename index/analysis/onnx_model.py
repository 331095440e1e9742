"""The light runtime: a sentence-transformers model run by onnxruntime and ``tokenizers``, without torch.

It serves models laid out as sentence-transformers saves them whose ``modules.json`` is a Transformer, a mean
Pooling and (optionally) a Normalize: all-MiniLM-L6-v2 among them. Texts are tokenized as sentence-transformers
does (its ``max_seq_length``, longest-first truncation, padding to the longest text of a batch), the ONNX graph
gives the token embeddings, and the mean over the attention mask, L2-normalised, is the vector: the same vectors
as sentence-transformers to a cosine of 0.99999 or better (``tests/analysis/test_onnx.py``).

The ONNX file is made from the installed weights by :mod:`index.analysis.onnx_export` in a child process (so the
process that answers never imports torch), once, and cached in :func:`default_cache_dir`, in a directory named by a
key of the model's files; a manifest there holds the SHA-256 of each file, checked at every load (about 0.08 s), so
a damaged file is exported again, never used, and what citebot cannot read as its own export is kept aside, never
deleted. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.config import default_data_dir
from index.errors import ModelError, Stopped

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

#: Bumped when the exported graph changes (its inputs, outputs or opset), so old cached files are not used.
FORMAT = 1
#: The graph's inputs and output, as :mod:`index.analysis.onnx_export` names them.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "token_embeddings"
#: The graph in a cached model's directory; its weights are in ``model.onnx.data`` beside it (external data, which
#: onnxruntime maps from the file instead of copying: a question peaks at about 100 MB less).
MODEL_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"
#: The file in a cached model's directory that records the size and SHA-256 of the others.
MANIFEST = "manifest.json"
#: The longest an export may take (a loaded 2-core machine took about 30 s).
EXPORT_TIMEOUT = 900.0
#: How long a process waits for another one's export before giving up.
LOCK_TIMEOUT = 1200.0
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


class Unsupported(Exception):
    """The model cannot run on the light runtime (its layout or pooling is not one this module replicates)."""


def default_cache_dir() -> Path:
    """Return where exported ONNX files are cached: ``models/`` in the default data directory, shared by libraries."""
    return default_data_dir() / "models"


@dataclass(frozen=True)
class ModelLayout:
    """What the light runtime needs to know about a sentence-transformers model directory."""

    directory: Path
    max_seq_length: int
    do_lower_case: bool
    dimension: int
    weights: Path

    @classmethod
    def read(cls, directory: Path) -> ModelLayout:
        """Return the layout of the model in ``directory``.

        Raises:
            Unsupported: when the modules are not Transformer, mean Pooling[, Normalize], or files are missing.
        """
        try:
            modules = json.loads((directory / "modules.json").read_text())
            types = [m["type"] for m in modules]
            if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]) or modules[0]["path"]:
                raise Unsupported(f"modules {types} (the light runtime needs Transformer, Pooling[, Normalize])")
            pooling = json.loads((directory / modules[1]["path"] / "config.json").read_text())
            modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
            if modes != {"pooling_mode_mean_tokens"} or not pooling.get("include_prompt", True):
                raise Unsupported(f"pooling {sorted(modes)} (the light runtime does mean pooling only)")
            bert = json.loads((directory / "sentence_bert_config.json").read_text())
            config = json.loads((directory / "config.json").read_text())
            tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise Unsupported(f"cannot read the model's configuration ({exc})") from None
        if not (directory / "tokenizer.json").is_file():
            raise Unsupported("no tokenizer.json")
        weights = next((directory / w for w in _WEIGHTS if (directory / w).is_file()), None)
        if weights is None:
            raise Unsupported("no model weights")
        limits = [bert.get("max_seq_length"), tokenizer_config.get("model_max_length")]
        limits.append(config.get("max_position_embeddings"))
        return cls(
            directory=directory,
            max_seq_length=min(int(n) for n in limits if isinstance(n, int) and n > 0),
            do_lower_case=bool(bert.get("do_lower_case", False)),
            dimension=int(pooling["word_embedding_dimension"]),
            weights=weights,
        )

    def key(self, fingerprint: str) -> str:
        """Return the cache key of this model's ONNX file: its fingerprint, configuration and weights file."""
        stat = self.weights.stat()
        parts = [f"format={FORMAT}", fingerprint, str(self.directory.resolve()), f"{stat.st_size}:{stat.st_mtime_ns}"]
        for name in ("config.json", "modules.json", "sentence_bert_config.json"):
            parts.append((self.directory / name).read_text())
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]
        safe = "".join(c if c.isalnum() or c in "-." else "-" for c in fingerprint)
        return f"{safe}-{digest}"


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _valid(directory: Path) -> bool:
    """Return whether the exported model in ``directory`` is whole: each file has the size and SHA-256 recorded."""
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
        if MODEL_FILE not in files:
            return False
        for name, recorded in files.items():
            path = directory / name
            if path.stat().st_size != recorded["size"] or sha256_of(path) != recorded["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def cached_state(layout: ModelLayout, fingerprint: str, cache_dir: Path) -> tuple[str, Path]:
    """Return whether ``layout``'s export in ``cache_dir`` is ``"valid"``, ``"damaged"`` or ``"absent"``, and where.

    Reads the manifest and hashes the files (as loading does); exports nothing, imports no torch.
    """
    directory = cache_dir / layout.key(fingerprint)
    if _valid(directory):
        return "valid", directory
    return ("damaged" if directory.exists() else "absent"), directory


def export_onnx(layout: ModelLayout, target: Path) -> None:
    """Export the model into the directory ``target`` in a child process (torch loads there, never here).

    Raises:
        ModelError: when the export fails or takes longer than :data:`EXPORT_TIMEOUT`.
    """
    command = [sys.executable, "-m", "index.analysis.onnx_export", str(layout.directory), str(target)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise ModelError(f"exporting the model to ONNX took more than {EXPORT_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].strip()[:200] if lines else f"exit code {done.returncode}"
        raise ModelError(f"cannot export the model to ONNX ({reason}); set CITEBOT_RUNTIME=torch to skip it")


def _seal(directory: Path, layout: ModelLayout, fingerprint: str) -> None:
    """Flush the exported files in ``directory`` to disk and record their sizes and SHA-256 in its manifest."""
    files = {}
    for path in sorted(directory.iterdir()):
        with path.open("rb+") as f:
            os.fsync(f.fileno())
        path.chmod(0o644)  # readable by every user of a shared cache, as the weights are
        files[path.name] = {"size": path.stat().st_size, "sha256": sha256_of(path)}
    record = {"fingerprint": fingerprint, "model": str(layout.directory), "format": FORMAT, "files": files}
    with (directory / MANIFEST).open("w") as f:
        json.dump(record, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    directory.chmod(0o755)


def _ours(directory: Path, fingerprint: str) -> bool:
    """Return whether ``directory`` is an export this module sealed for ``fingerprint``, whole or not: a real
    directory whose manifest reads and names it, holding only regular files that manifest lists."""
    try:
        if directory.is_symlink() or not directory.is_dir():
            return False
        record = json.loads((directory / MANIFEST).read_text())
        listed = {*record["files"], MANIFEST}
        if record["fingerprint"] != fingerprint:
            return False
        return all(p.name in listed and p.is_file() and not p.is_symlink() for p in directory.iterdir())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cached_onnx(layout: ModelLayout, fingerprint: str, cache_dir: Path) -> Path:
    """Return the path of a whole ONNX model of ``layout`` in ``cache_dir``, exporting it first if needed.

    A whole export is used without a lock (one sealed in place is never changed), so a read-only cache serves. One
    process exports at a time (a file lock). The export is written to a temporary directory, sealed with a manifest
    (sizes, SHA-256) and renamed into place. What was there before is replaced by rename too: an export of ours whose
    files do not match their manifest is then deleted; anything else (a damaged manifest, a directory or link in place
    of a file, files it does not list) is never deleted, but kept aside as ``KEY.damaged-TIME``, and the warning
    says where.

    Raises:
        ModelError: when the cache directory is not writable or the export fails.
    """
    from filelock import FileLock, Timeout

    key = layout.key(fingerprint)
    directory = cache_dir / key
    if _valid(directory):
        return directory / MODEL_FILE
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache_dir / f"{key}.lock"), timeout=LOCK_TIMEOUT):
            if _valid(directory):
                return directory / MODEL_FILE
            found = directory.exists() or directory.is_symlink()
            ours = found and _ours(directory, fingerprint)
            aside = cache_dir / f"{key}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            # The one slow step of a first start (38 of the first 41 s of a new bot, measured), said as it starts.
            export = f"exporting the model {fingerprint} to ONNX, once (about 40 s; later starts take a few seconds)"
            if ours:
                log.warning(
                    "the cached ONNX model %s is damaged (its files do not match their manifest); %s", directory, export
                )
            elif found:
                log.warning(
                    "%s is not an ONNX export citebot can read as its own (kept as %s, not deleted); %s",
                    directory,
                    aside,
                    export,
                )
            else:
                log.warning("%s: cached in %s", export, cache_dir)
            started = time.monotonic()
            temporary = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=cache_dir))
            try:
                export_onnx(layout, temporary)
                log.info("exported the model to ONNX in %.0f s", time.monotonic() - started)
                _seal(temporary, layout, fingerprint)
                if found:
                    os.replace(directory, aside)
                os.replace(temporary, directory)
                if ours:
                    shutil.rmtree(aside, ignore_errors=True)
            finally:
                shutil.rmtree(temporary, ignore_errors=True)
            return directory / MODEL_FILE
    except Timeout:
        raise ModelError(f"another process has been exporting the model for over {LOCK_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise ModelError(f"cannot cache the ONNX model in {cache_dir} ({exc.strerror or exc})") from None


def cores() -> int:
    """Return how many CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_tokenizer(layout: ModelLayout) -> Tokenizer:
    """Return the model's fast tokenizer, truncating at the model's ``max_seq_length`` (not tokenizer.json's)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(layout.directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=layout.max_seq_length, strategy="longest_first")
    tokenizer.no_padding()  # batches are padded here, each to its own longest text (as sentence-transformers does)
    return tokenizer


class OnnxEncoder:
    """Encodes texts with the model's ONNX graph on onnxruntime: token embeddings, mean over the mask, unit length.

    Args:
        layout: the model (see :class:`ModelLayout`).
        onnx_path: its exported graph.
        threads: CPU threads of the session (``None``: every core).
    """

    def __init__(self, layout: ModelLayout, onnx_path: Path, threads: int | None = None) -> None:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # else it writes a device id under ~/.cache/Microsoft
        import onnxruntime

        self.layout = layout
        self.path = onnx_path
        self.tokenizer = load_tokenizer(layout)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on a shared CPU
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._pad = self.tokenizer.token_to_id("[PAD]") or 0
        # A batch of long texts grows the session's memory arena by ~100 MB, which it would keep for good: after the
        # last batch of several texts, the arena gives back what it holds (one question's run keeps its small arena).
        self._shrink = onnxruntime.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def encode(
        self, texts: list[str], batch_size: int, progress: bool, should_stop: Callable[[], bool] | None = None
    ) -> np.ndarray:
        """Return the ``(len(texts), dimension)`` float32 unit vectors of ``texts``, in their order.

        Raises:
            Stopped: when ``should_stop()`` says so, checked before each batch.
        """
        if self.layout.do_lower_case:
            texts = [t.lower() for t in texts]
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))  # little padding per batch
        out = np.empty((len(texts), self.layout.dimension), dtype=np.float32)
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", file=sys.stderr)
        last = (len(order) - 1) // batch_size * batch_size
        for start in starts:
            if should_stop is not None and should_stop():
                raise Stopped("stopped while embedding")
            chosen = order[start : start + batch_size]
            out[chosen] = self._batch([encodings[i] for i in chosen], shrink=start == last and len(texts) > 1)
        return out

    def _batch(self, encodings: list, shrink: bool = False) -> np.ndarray:
        """Return the unit vectors of one batch of tokenized texts (``shrink``: then give the arena back)."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (tokens,) = self.session.run([OUTPUT], feed, self._shrink if shrink else None)
        weights = mask[:, :, None].astype(np.float32)
        summed = (tokens.astype(np.float32) * weights).sum(axis=1)
        mean = summed / np.clip(weights.sum(axis=1), 1e-9, None)
        return mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
