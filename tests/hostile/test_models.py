"""A damaged installation's models: the shipped answer-sentence model missing, truncated or replaced by garbage of
its own size. Real ``citebot`` runs (a small wrapper points the loader at a damaged copy): ``ask`` answers from the
first stage with one warning that says how to repair it, its JSON says so, and ``doctor`` reports a problem without
``--deep``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from index.analysis.answer_model import DEFAULT_DIRECTORY, MODEL_FILE, TOKENIZER_FILE
from tests.support.citebot import citebot_environment

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
