"""Hostile use of the stored index: processes racing each other, and a manifest whose numbers were tampered with.

The racing processes are real (python subprocesses and the installed ``citebot``), on real files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index import store
from index.build import open_index
from index.config import IndexConfig
from index.embed import Embedder
from index.ingest import Article, article_from_paragraphs

ROOT = Path(__file__).resolve().parents[2]

#: A process that saves the index read from argv[1] into argv[2] argv[4] times (argv[3]: the key, as JSON).
WRITER = """
import json, sys
from pathlib import Path
from index import store
index = store.load_index(Path(sys.argv[1]), json.loads(sys.argv[3]))
for _ in range(int(sys.argv[4])):
    store.save_index(index, Path(sys.argv[2]))
"""

#: A process that loads argv[1] until the file argv[3] exists (at least argv[4] times); prints what it saw.
READER = """
import json, sys, traceback
from collections import Counter
from pathlib import Path
from index import store
seen, directory, key, stop = Counter(), Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
while not stop.exists() or sum(seen.values()) < int(sys.argv[4]):
    try:
        index = store.load_index(directory, key)
        seen["none" if index is None else index.article.paragraph(0)] += 1
    except Exception as exc:
        seen[f"{type(exc).__name__}: {exc}"] += 1
print(json.dumps(seen))
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _article(version: str) -> Article:
    return article_from_paragraphs([f"The bridge opened in {version}.", "It cost ten million."], source="/x/news.txt")


def test_four_processes_saving_the_same_index_at_once_all_succeed(
    embedder: Embedder, config: IndexConfig, tmp_path: Path
) -> None:
    index, report = open_index(_article("May"), embedder, config)
    key = json.dumps(store.index_key(index.article, embedder.fingerprint, config.window))
    target = tmp_path / "shared" / report.directory.name
    writers = [_python(WRITER, str(report.directory), str(target), key, "40") for _ in range(4)]
    results = [(w.wait(timeout=300), w.stderr.read()) for w in writers]
    assert results == [(0, "")] * 4
    loaded = store.load_index(target, json.loads(key))
    assert loaded is not None and loaded.article.text == index.article.text
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == [target.name]


def test_readers_see_the_old_or_the_new_index_while_a_writer_replaces_it(
    embedder: Embedder, config: IndexConfig, tmp_path: Path
) -> None:
    # Two versions under one key: the writer alternates them, so a reader that mixed files would be caught.
    may, report = open_index(_article("May"), embedder, config)
    key = json.dumps(store.index_key(may.article, embedder.fingerprint, config.window))
    june_dir = tmp_path / "june"
    june = open_index(_article("June"), embedder, IndexConfig(data_dir=june_dir))[0]
    june.manifest = {**june.manifest, **json.loads(key)}
    store.save_index(june, june_dir / "june")
    stop = tmp_path / "stop"
    readers = [_python(READER, str(report.directory), key, str(stop), "1500") for _ in range(3)]
    writer_script = WRITER.replace("for _ in", "for i in").replace(
        "store.save_index(index,", "store.save_index(other if i % 2 else index,"
    )
    writer_script = writer_script.replace(
        "for i in", "other = store.load_index(Path(sys.argv[5]), json.loads(sys.argv[3]))\nfor i in"
    )
    writer = _python(writer_script, str(report.directory), str(report.directory), key, "300", str(june_dir / "june"))
    assert writer.wait(timeout=600) == 0, writer.stderr.read()
    stop.touch()
    seen: dict[str, int] = {}
    for reader in readers:
        out, err = reader.communicate(timeout=300)
        assert reader.returncode == 0, err
        for what, count in json.loads(out).items():
            seen[what] = seen.get(what, 0) + count
    assert set(seen) <= {"The bridge opened in May.", "The bridge opened in June."}, seen
    assert sum(seen.values()) >= 4500


def test_four_first_runs_at_once_build_the_index_once(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT_DATA_DIR=str(tmp_path / "data"), NO_COLOR="1")
    citebot = str(Path(sys.executable).with_name("citebot"))
    runs = [
        subprocess.Popen([citebot, "index"], env=environment, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4
    hows = sorted("built (new)" if "built (new)" in out else "reused" if "reused" in out else out for out in outputs)
    assert hows == ["built (new)", "reused", "reused", "reused"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("mean", math.nan), ("mean", 5.0), ("std", math.inf), ("std", -0.5)],
    ids=["mean-nan", "mean-5", "std-inf", "std-negative"],
)
def test_manifest_background_out_of_range_is_damage(
    seed: Article, embedder: Embedder, config: IndexConfig, field: str, value: float, caplog: pytest.LogCaptureFixture
) -> None:
    _, report = open_index(seed, embedder, config)
    path = report.directory / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["background"][field] = value
    path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        index, rebuilt = open_index(seed, embedder, config)
    assert rebuilt.built and rebuilt.reason.startswith("damaged: background")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert math.isfinite(index.background.mean) and -1 < index.background.mean < 1
    assert not open_index(seed, embedder, config)[1].built


@pytest.mark.parametrize("field", ["sentences", "chunks", "paragraphs"])
def test_manifest_counts_that_disagree_are_damage(
    seed: Article, embedder: Embedder, config: IndexConfig, field: str
) -> None:
    _, report = open_index(seed, embedder, config)
    path = report.directory / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest[field] += 7
    path.write_text(json.dumps(manifest))
    _, rebuilt = open_index(seed, embedder, config)
    assert rebuilt.built and rebuilt.reason.startswith("damaged: manifest says")


def test_tampered_background_through_the_cli_warns_once_and_answers(run_citebot, tmp_path: Path) -> None:
    assert run_citebot("index").returncode == 0
    (manifest_path,) = (tmp_path / "cli-data").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["background"]["mean"] = math.nan  # before: every question "not in the article", silently, forever
    manifest_path.write_text(json.dumps(manifest))
    result = run_citebot("ask", "--json", "Who denied the claim?")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and "damaged" in warnings[0] and "background mean" in warnings[0]
    assert json.loads(result.stdout)["found"] is True
    again = run_citebot("ask", "--json", "Who denied the claim?")
    assert again.stderr == "" and json.loads(again.stdout)["found"] is True
