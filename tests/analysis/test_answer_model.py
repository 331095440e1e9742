"""The shipped answer-sentence model: it loads offline, tells an answer from a neighbour, and fails in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fnmatch import fnmatch

import numpy as np
import pytest

from index.analysis.answer_model import DEFAULT_DIRECTORY, MODEL_FILE, TOKENIZER_FILE, AnswerModel, default_answer_model
from index.errors import ModelError
from index.search.library_index import ArticleData
from tests.support.paths import BENCHMARKS, ROOT

QUESTIONS = json.loads((BENCHMARKS / "seed_questions.json").read_text())["answerable"]


def test_the_model_ships_inside_the_package_small_and_documented() -> None:
    assert (DEFAULT_DIRECTORY / MODEL_FILE).stat().st_size < 30_000_000
    about = json.loads((DEFAULT_DIRECTORY / "about.json").read_text())
    assert about["trained_by"] == "python -m benchmarks.answer_model"
    assert about["held_out_fold"] is None  # the shipped model saw every article of half A
    assert set(about["data"]) == {"squad-v1.1-dev-A.json", "squad-v2.0-dev-A.json"}
    assert (ROOT / "benchmarks" / "answer_model.py").exists()


def test_it_prefers_the_answering_sentence_to_the_rest_of_the_article(seed_data: ArticleData) -> None:
    """For the bundled article's questions, the marked answer sentence outscores most of the article's others."""
    model = default_answer_model()
    sentences = [seed_data.sentence_text(i) for i in range(len(seed_data.sentences))]
    ranks = []
    for case in QUESTIONS:
        gold = [i for i, s in enumerate(sentences) if case["sentence"] in s]
        assert gold, case["sentence"]
        logits = model.score(case["question"], sentences)
        ranks.append(int((logits > logits[gold].max()).sum()))  # how many sentences beat the answer
    # A model that scored everything alike (or at random) would put the answer near the middle.
    assert np.median(ranks) <= 2, ranks
    assert sum(r < 5 for r in ranks) >= 0.8 * len(ranks), ranks


def test_its_scores_are_deterministic_and_independent_of_the_batch() -> None:
    model = default_answer_model()
    question = "How many Russian drones were downed?"
    sentences = [
        "Reports emerged that two Russian drones were downed.",
        "Talks are set to continue.",
        "Agencies contributed to this report, which was long and had many words in it to pad the batch.",
    ]
    together = model.score(question, sentences)
    alone = np.array([model.score(question, [s])[0] for s in sentences])
    assert together.tolist() == alone.tolist()  # each pair runs alone: its neighbours change nothing
    assert model.score(question, sentences).tolist() == together.tolist()
    assert model.score(question, []).shape == (0,)


def test_a_damaged_model_is_one_line(tmp_path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    (tmp_path / TOKENIZER_FILE).write_bytes((DEFAULT_DIRECTORY / TOKENIZER_FILE).read_bytes())
    with pytest.raises(ModelError) as caught:
        AnswerModel(tmp_path)
    assert "\n" not in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(ModelError):
        AnswerModel(tmp_path / "missing")


def test_scoring_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys; from index.analysis.answer_model import default_answer_model; "
        "default_answer_model().score('who?', ['Someone did.']); "
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_wheel_carries_the_model_files() -> None:
    """Every file of the shipped model matches the package data that pyproject.toml declares (a wheel has them)."""
    declared = re.search(r"^index = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert declared, "no package data for index in pyproject.toml"
    patterns = re.findall(r'"([^"]+)"', declared.group(1))
    files = [path.relative_to(DEFAULT_DIRECTORY.parent.parent).as_posix() for path in DEFAULT_DIRECTORY.iterdir()]
    assert {MODEL_FILE, TOKENIZER_FILE, "about.json"} <= {path.name for path in DEFAULT_DIRECTORY.iterdir()}
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in files), (files, patterns)
