"""The light runtime: the default model on onnxruntime gives sentence-transformers' vectors, without torch."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.loading import QUESTION_THREADS, load_embedder
from bot.settings import Settings
from index.analysis import onnx_model
from index.analysis.embed import Embedder, resolve_model
from index.answer import answer
from index.config import DEFAULT_MODEL, IndexConfig, default_article
from index.errors import CitebotError, ModelError
from index.reading.article import Article
from index.search.retrieve import Searcher
from index.store.library import Library

HEAVY = ("torch", "transformers", "sentence_transformers")


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    """The default model on sentence-transformers: the reference."""
    return Embedder(runtime="torch")


def _texts(seed: Article) -> list[str]:
    """500 texts: the bundled article's paragraphs and sentences, odd inputs, and texts up to past 256 tokens."""
    paragraphs = [p for p in default_article().read_text().split("\n") if p.strip()]
    words = " ".join(paragraphs).split()
    odd = ["", " ", "?", "Ünïcödé façade — naïve café", "東京で会いましょう", "emoji 🙂🚀 text", "a\tb\nc", "A" * 300]
    odd += ["  Who denied the claim?  ", "WHO DENIED THE CLAIM?", "who denied the claim"]
    rng = random.Random(16)
    texts = [*odd, *paragraphs]
    sentences = [s for p in paragraphs for s in p.replace("? ", ". ").split(". ") if s]
    texts += sentences[: 250 - len(texts)]
    while len(texts) < 420:  # 1 to 120 words: under the 128 tokens tokenizer.json would cut at
        start = rng.randrange(len(words))
        texts.append(" ".join(words[start : start + rng.randint(1, 120)]))
    while len(texts) < 500:  # 150 to 400 words: past 128 tokens, most past 256
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(150, 400))))
    return texts


def test_vectors_match_sentence_transformers_on_500_texts(embedder: Embedder, torch_embedder: Embedder, seed) -> None:
    assert embedder.runtime == "onnx" and torch_embedder.runtime == "torch"
    assert embedder.fingerprint == torch_embedder.fingerprint == "all-minilm-l6-v2:384"
    texts = _texts(seed)
    assert len(texts) == 500
    lengths = [len(embedder._onnx.tokenizer.encode(t).ids) for t in texts]  # type: ignore[union-attr]
    assert max(lengths) == 256 and sum(n == 256 for n in lengths) >= 40  # truncated where sentence-transformers does
    assert sum(128 < n < 256 for n in lengths) >= 20
    expected = torch_embedder.encode(texts, progress=False)
    got = embedder.encode(texts, progress=False)
    assert got.dtype == np.float32 and got.shape == (500, 384)
    cosines = np.sum(expected * got, axis=1)
    assert cosines.min() >= 0.99999, (cosines.min(), texts[int(cosines.argmin())][:80])
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # a batch agrees with the texts embedded one at a time (questions), and with other batch sizes
    alone = np.stack([embedder.encode_query(t) for t in texts[::5]])
    assert np.sum(alone * got[::5], axis=1).min() >= 0.99999
    other = embedder.encode(texts, batch_size=7, progress=False)
    assert np.sum(other * got, axis=1).min() >= 0.99999


def test_a_library_built_on_torch_answers_on_onnx_without_embedding_it_again(
    embedder: Embedder, torch_embedder: Embedder, tmp_path: Path
) -> None:
    config = IndexConfig(data_dir=tmp_path / "data")
    built = Searcher(Library(config.data_dir, config), torch_embedder)
    before = answer(built, "Who denied the claim?")
    assert before.found

    seen: list[str] = []

    class Counting:
        def encode(self, texts: list[str], **kwargs) -> np.ndarray:
            seen.extend(texts)
            return embedder.encode(texts, **kwargs)

        def encode_query(self, text: str) -> np.ndarray:
            return self.encode([text], progress=False)[0]

        def __getattr__(self, name: str):
            return getattr(embedder, name)

    reopened = Searcher(Library(config.data_dir, config), Counting())  # type: ignore[arg-type]
    after = answer(reopened, "Who denied the claim?")
    assert seen == ["Who denied the claim?"]  # the question only: the stored vectors are used as they are
    assert [p.sentence for p in after.passages] == [p.sentence for p in before.passages]
    assert after.confidence == pytest.approx(before.confidence, abs=1e-4)


def _probe(code: str, tmp_path: Path, stdin: str = "", **env: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; return the heavy modules it imported, by step (it prints JSON)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update({"CITEBOT_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1", **env})
    prelude = (
        "import json, sys\n"
        "def heavy():\n"
        "    return sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', "
        "'sentence_transformers', 'faiss'})\n"
        "seen = {}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code + "\nprint('\\nHEAVY', json.dumps(seen))"],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("HEAVY ")]
    return json.loads(line[len("HEAVY ") :])


ANSWERING = """
from bot.terminal.cli import main
code = main(['ask', 'Who denied the claim?'])
assert code == 0, code
seen['ask'] = heavy()
code = main(['console'])
assert code == 0, code
seen['console'] = heavy()
import bot.telegram.app
from bot.loading import open_searcher
from bot.settings import Settings
from index.answer import answer
searcher = open_searcher(Settings.from_env(env_file=None), None)  # what the Telegram bot answers from
assert answer(searcher, 'Who denied the claim?').found
seen['telegram'] = heavy()
"""

LISTING = """
from bot.terminal.cli import main
assert main(['list']) == 0
assert main(['remove', '1']) == 0
seen['list-remove'] = heavy()
"""


@pytest.mark.slow
def test_answering_never_imports_torch_and_listing_loads_no_model(embedder: Embedder, tmp_path: Path) -> None:
    assert embedder.runtime == "onnx"  # the ONNX file is cached now (the subprocesses share the cache)
    seen = _probe(ANSWERING, tmp_path, stdin="Who denied the claim?\nquit\n")
    assert seen == {"ask": ["faiss"], "console": ["faiss"], "telegram": ["faiss"]}
    assert _probe(LISTING, tmp_path) == {"list-remove": []}
    # CITEBOT_RUNTIME=torch still runs on torch
    forced = _probe(
        "from bot.terminal.cli import main\nmain(['ask', 'x'])\nseen['ask'] = heavy()",
        tmp_path,
        CITEBOT_RUNTIME="torch",
    )
    assert "torch" in forced["ask"] and "sentence_transformers" in forced["ask"]


@pytest.mark.slow
def test_a_damaged_cached_model_is_exported_again_never_used(
    embedder: Embedder, torch_embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="index.analysis.onnx_model")
    cache = tmp_path / "models"
    cached = embedder._onnx.path.parent  # type: ignore[union-attr]
    directory = cache / cached.name
    shutil.copytree(cached, directory)  # a whole cached model, as an export leaves it
    assert Embedder(cache_dir=cache).runtime == "onnx" and "exporting" not in caplog.text  # used as it is
    weights = directory / onnx_model.WEIGHTS_FILE
    manifest = json.loads((directory / onnx_model.MANIFEST).read_text())
    with weights.open("r+b") as f:  # flip bytes in the middle of the weights: the graph still loads
        f.seek(weights.stat().st_size // 2)
        chunk = f.read(4096)
        f.seek(weights.stat().st_size // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    assert onnx_model.sha256_of(weights) != manifest["files"][onnx_model.WEIGHTS_FILE]["sha256"]

    again = Embedder(cache_dir=cache)
    assert again.runtime == "onnx"
    assert "is damaged (its files do not match their manifest); exporting the model" in caplog.text
    assert (
        onnx_model.sha256_of(weights)
        == json.loads((directory / onnx_model.MANIFEST).read_text())["files"][onnx_model.WEIGHTS_FILE]["sha256"]
    )
    texts = ["Who denied the claim?", "Turkey launched an operation in Idlib."]
    assert np.sum(again.encode(texts) * torch_embedder.encode(texts), axis=1).min() >= 0.99999
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]  # no temporary directory left behind


def test_a_cache_that_cannot_be_written_falls_back_to_torch_or_fails_in_one_line(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelError) as caught:
        Embedder(runtime="onnx", cache_dir=blocker / "models")
    assert "cannot cache the ONNX model" in str(caught.value) and "\n" not in str(caught.value)
    fallback = Embedder(cache_dir=blocker / "models")
    assert fallback.runtime == "torch" and "using torch instead" in caplog.text
    assert fallback.fingerprint == "all-minilm-l6-v2:384"


def test_threads_one_for_a_question_every_core_for_a_batch(embedder: Embedder, tmp_path: Path) -> None:
    settings = Settings.from_env({"CITEBOT_DATA_DIR": str(tmp_path)}, env_file=None)
    question = load_embedder(settings)
    batch = load_embedder(settings, batch=True)
    assert question.runtime == batch.runtime == "onnx"
    threads = [e._onnx.session.get_session_options().intra_op_num_threads for e in (question, batch)]  # type: ignore[union-attr]
    assert threads == [QUESTION_THREADS, onnx_model.cores()]
    pinned = load_embedder(Settings.from_env({"CITEBOT_THREADS": "3", "CITEBOT_DATA_DIR": str(tmp_path)}, None), True)
    assert pinned._onnx.session.get_session_options().intra_op_num_threads == 3  # type: ignore[union-attr]


def test_onnxruntime_leaves_no_device_id_in_the_cache(embedder: Embedder, tmp_path: Path) -> None:
    cache = embedder._onnx.path.parent.parent  # type: ignore[union-attr]
    code = f"from index.analysis.embed import Embedder; assert Embedder(cache_dir={str(cache)!r}).runtime == 'onnx'"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    assert list(tmp_path.iterdir()) == []  # onnxruntime's telemetry would write Microsoft/DeveloperTools here


def test_the_runtime_setting() -> None:
    assert Settings.from_env({}, env_file=None).index.runtime == "auto"
    assert Settings.from_env({"CITEBOT_RUNTIME": "Torch"}, env_file=None).index.runtime == "torch"
    with pytest.raises(CitebotError, match="CITEBOT_RUNTIME='gpu' is not valid: expected one of auto, onnx, torch"):
        Settings.from_env({"CITEBOT_RUNTIME": "gpu"}, env_file=None)


def test_a_model_the_light_runtime_cannot_replicate_is_refused(tmp_path: Path) -> None:
    model = Path(resolve_model(DEFAULT_MODEL))
    copy = tmp_path / "cls-model"
    copy.mkdir()
    for name in ("modules.json", "sentence_bert_config.json", "config.json", "tokenizer_config.json"):
        (copy / name).write_text((model / name).read_text())
    (copy / "1_Pooling").mkdir()
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(onnx_model.Unsupported, match="mean pooling only"):
        onnx_model.ModelLayout.read(copy)
    layout = onnx_model.ModelLayout.read(model)
    assert layout.max_seq_length == 256 and layout.dimension == 384  # sentence_bert_config.json, not tokenizer.json


EXPORTING = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")  # as citebot logs by default
from index.analysis.embed import Embedder
embedder = Embedder(threads=1)
vector = embedder.encode_query("Who denied the claim?").tolist()
print(json.dumps({"runtime": embedder.runtime, "path": str(embedder._onnx.path), "vector": vector}))
"""


@pytest.mark.slow
def test_two_processes_asking_for_the_export_at_once_share_one_export(embedder: Embedder, tmp_path: Path) -> None:
    cache = tmp_path / "xdg"  # empty: the first to take the lock exports, the other waits and uses that export
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update({"XDG_CACHE_HOME": str(cache)})
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORTING],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["runtime"] for r in results] == ["onnx", "onnx"]
    assert results[0]["path"] == results[1]["path"]
    exports = sum(err.count("exporting") for _, err in outputs)
    assert exports == 1, [err[-2000:] for _, err in outputs]  # one process exported, the other waited
    said = next(err for _, err in outputs if "exporting" in err)
    assert "exporting the model all-minilm-l6-v2:384 to ONNX, once (about 40 s" in said  # issue 23: said as it starts
    models = cache / "citebot" / "models"
    (directory,) = [p for p in models.iterdir() if p.is_dir()]  # one cached copy, no temporary directory left
    layout = onnx_model.ModelLayout.read(Path(resolve_model(DEFAULT_MODEL)))
    assert onnx_model.cached_state(layout, embedder.fingerprint, models) == ("valid", directory)
    expected = embedder.encode_query("Who denied the claim?")
    for result in results:
        assert float(np.dot(np.array(result["vector"]), expected)) >= 0.99999
