"""A damaged installation's models: the shipped answer-sentence model missing, truncated or replaced by garbage of
its own size. Real ``citebot`` runs (a small wrapper points the loader at a damaged copy): ``ask`` answers from the
first stage with one warning that says how to repair it, its JSON says so, and ``doctor`` reports a problem without
``--deep``."""

from __future__ import annotations

import builtins
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index.analysis import onnx_model
from index.analysis.answer_model import DEFAULT_DIRECTORY, MODEL_FILE, TOKENIZER_FILE
from index.analysis.embed import Embedder
from index.errors import ModelError
from tests.support.citebot import citebot_environment
from tests.support.mounts import remount_read_only, tmpfs

QUESTION = "Which two roads meet at Saraqeb?"
#: Runs ``citebot ARGS`` with the answer-sentence model loaded from the directory in argv[1].
WRAPPER = """
import sys
from pathlib import Path
import index.analysis.answer_model as answer_model
answer_model.DEFAULT_DIRECTORY = Path(sys.argv[1])
from bot.terminal.cli import main
sys.exit(main(sys.argv[2:]))
"""
FILES = (MODEL_FILE, TOKENIZER_FILE, "about.json")


def _damage(directory: Path, name: str, how: str) -> None:
    """Damage the file ``name`` in ``directory``: ``missing``, ``truncated`` (half of it) or ``garbage``."""
    path = directory / name
    size = path.stat().st_size
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        os.truncate(path, size // 2)
    else:
        path.write_bytes(os.urandom(size))


def _run(tmp_path: Path, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``citebot args`` with the answer-sentence model in ``directory``."""
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, str(directory), *args],
        capture_output=True,
        text=True,
        env=citebot_environment(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("how", ["missing", "truncated", "garbage"])
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_answer_model_is_loud_but_the_question_is_answered(tmp_path: Path, name: str, how: str) -> None:
    copy = tmp_path / "answer_model"
    shutil.copytree(DEFAULT_DIRECTORY, copy)
    _damage(copy, name, how)

    asked = _run(tmp_path, copy, "ask", "--json", QUESTION)
    assert asked.returncode == 0, asked.stderr
    assert "Traceback" not in asked.stderr
    (warning,) = asked.stderr.splitlines()  # one line, and it says what is wrong and how to repair it
    assert "answer-sentence model" in warning and "damaged" in warning and "reinstall citebot" in warning, warning
    assert name in warning, warning
    reply = json.loads(asked.stdout)
    assert reply["found"] and "M4 and M5" in reply["passages"][0]["text"]  # answered, from the first stage
    assert "damaged" in reply["degraded"] and "first stage" in reply["degraded"]

    doctor = _run(tmp_path, copy, "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    (line,) = [line for line in doctor.stdout.splitlines() if "answer model" in line]
    assert line.startswith("problem:") and name in line, line
    assert "Traceback" not in doctor.stderr


@pytest.mark.slow
def test_a_whole_answer_model_is_quiet_and_not_degraded(tmp_path: Path) -> None:
    asked = _run(tmp_path, DEFAULT_DIRECTORY, "ask", "--json", QUESTION)
    assert asked.returncode == 0 and asked.stderr == "", asked.stderr
    assert "degraded" not in json.loads(asked.stdout)
    doctor = _run(tmp_path, DEFAULT_DIRECTORY, "doctor")
    (line,) = [line for line in doctor.stdout.splitlines() if "answer model" in line]
    assert line.startswith("ok:") and "SHA-256" in line, line


# --- the ONNX cache: damaged, in place of a file, read-only, and two processes under a read-only home ---------------

ENCODING = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")  # as citebot logs by default
from index.analysis.embed import Embedder
embedder = Embedder(threads=1)
print(json.dumps({"runtime": embedder.runtime, "vector": embedder.encode_query("Who denied the claim?").tolist()}))
"""


def _good_export(embedder: Embedder) -> Path:
    """Return the directory of the session's whole ONNX export (the one the shared ``embedder`` runs)."""
    assert embedder._onnx is not None
    return embedder._onnx.path.parent


def _encoding(home: Path, count: int = 1, **env: str) -> list[tuple[dict, str]]:
    """Run ``count`` processes at once that load the default model with ``HOME=home``; return each one's result
    (runtime, a question's vector) and standard error."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_", "XDG_"))}
    environment.update({"HOME": str(home), **env})
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", ENCODING], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * count, [err[-2000:] for _, err in outputs]
    return [(json.loads(out.strip().splitlines()[-1]), err) for out, err in outputs]


@pytest.mark.slow
def test_a_whole_export_on_a_read_only_file_system_is_used(embedder: Embedder, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "home", "200m") as home:
        models = home / ".cache" / "citebot" / "models"
        models.mkdir(parents=True)
        shutil.copytree(_good_export(embedder), models / _good_export(embedder).name)
        remount_read_only(home)
        ((result, err),) = _encoding(home)
    assert result["runtime"] == "onnx" and err == "", err  # before: no lock file could be made, so torch
    expected = embedder.encode_query("Who denied the claim?")
    assert float(np.dot(np.array(result["vector"]), expected)) >= 0.99999


@pytest.mark.slow
def test_two_processes_under_a_read_only_home_answer_on_torch_with_one_warning_each(
    embedder: Embedder, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "home", "1m") as home:
        remount_read_only(home)  # empty and read-only: ~/.cache/citebot/models cannot be made, nor exported into
        results = _encoding(home, count=2)
        assert list(home.iterdir()) == []
    expected = embedder.encode_query("Who denied the claim?")
    for result, err in results:
        assert result["runtime"] == "torch"
        (line,) = [line for line in err.splitlines() if line.strip()]
        assert "cannot cache the ONNX model" in line and "Read-only file system" in line and "using torch" in line
        assert float(np.dot(np.array(result["vector"]), expected)) >= 0.99999


def _copy_export(good: Path) -> Callable[[onnx_model.ModelLayout, Path], None]:
    """Return an ``export_onnx`` that copies the whole export ``good`` (the real one takes 40 s and is proven by
    tests/analysis/test_onnx.py's slow tests) into its target, counting its calls in ``calls``."""

    def export(layout: onnx_model.ModelLayout, target: Path) -> None:
        export.calls += 1  # type: ignore[attr-defined]
        for name in (onnx_model.MODEL_FILE, onnx_model.WEIGHTS_FILE):
            shutil.copyfile(good / name, target / name)

    export.calls = 0  # type: ignore[attr-defined]
    return export


def _truncate(directory: Path) -> None:
    os.truncate(directory / onnx_model.MODEL_FILE, (directory / onnx_model.MODEL_FILE).stat().st_size // 2)


def _garbage(directory: Path) -> None:
    (directory / onnx_model.MODEL_FILE).write_bytes(os.urandom((directory / onnx_model.MODEL_FILE).stat().st_size))


def _a_directory(directory: Path) -> None:
    (directory / onnx_model.MODEL_FILE).unlink()
    (directory / onnx_model.MODEL_FILE).mkdir()
    (directory / onnx_model.MODEL_FILE / "notes.txt").write_text("someone's file")


def _manifest(directory: Path) -> None:
    (directory / onnx_model.MANIFEST).write_bytes(b'{"files": {"model.onn')


@pytest.mark.parametrize(
    ("damage", "ours"),
    [(_truncate, True), (_garbage, True), (_a_directory, False), (_manifest, False)],
    ids=["truncated", "garbage-of-its-size", "a-directory-in-its-place", "a-damaged-manifest"],
)
def test_a_damaged_cache_is_exported_again_with_one_warning_and_nothing_unreadable_deleted(
    embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch, damage, ours: bool
) -> None:
    good = _good_export(embedder)
    cache = tmp_path / "models"
    directory = cache / good.name
    shutil.copytree(good, directory)
    damage(directory)
    monkeypatch.setattr(onnx_model, "export_onnx", export := _copy_export(good))
    caplog.set_level(logging.WARNING)

    again = Embedder(cache_dir=cache)
    assert again.runtime == "onnx" and export.calls == 1  # type: ignore[attr-defined]
    (warning,) = [r.getMessage() for r in caplog.records]  # one line: what was wrong, and that it exports again
    assert str(directory) in warning and "exporting the model" in warning, warning
    assert again._onnx is not None
    assert onnx_model.cached_state(again._onnx.layout, again.fingerprint, cache) == ("valid", directory)
    kept = [p for p in cache.iterdir() if ".damaged-" in p.name]
    if ours:
        assert "is damaged" in warning and kept == []  # an export of ours, identified by its manifest: replaced
    else:
        (aside,) = kept  # not readable as ours: kept, never deleted, and the warning says where
        assert "not an ONNX export citebot can read as its own" in warning and str(aside) in warning
        if damage is _a_directory:
            assert (aside / onnx_model.MODEL_FILE / "notes.txt").read_text() == "someone's file"
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    texts = ["Who denied the claim?", "Turkey launched an operation in Idlib."]
    assert np.sum(again.encode(texts) * embedder.encode(texts), axis=1).min() >= 0.99999


def test_a_runtime_that_fails_to_import_is_named_truly(monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    real = builtins.__import__

    def failing(name: str, *args, **kwargs):
        if name == "onnxruntime":  # installed but failing to load: such an ImportError carries no module name
            raise ImportError("generic_type: type 'InferenceSession' is already registered!")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(ModelError) as caught:
        Embedder(runtime="onnx")
    message = str(caught.value)
    assert "None" not in message and "already registered" in message and "onnxruntime" in message, message
