"""``kill -9`` of a real ``citebot add`` (new or replacing a changed article) and ``citebot remove`` at each step that
writes: the library stays consistent and keeps what was committed. The process kills itself at the step named by the
test-only ``CITEBOT_TEST_KILL_AT`` (:mod:`index.store.crash`), so every run lands exactly there, not wherever a timer
happened to fire."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from index.store.catalog import Catalog
from index.store.crash import ADD_STEPS, KILL_AT, REMOVE_STEPS, REPLACE_STEPS
from index.store.library import CATALOG, VECTORS
from tests.support.paths import CITEBOT

pytestmark = pytest.mark.slow  # runs real citebot processes

BAKERY = "Village bakery\n\nThe bakery on Mill Street opened in 1952.\n\nIts rye bread sells out by nine.\n"
#: The same source changed: another title and another year, so which version is stored shows in ``list`` and answers.
REBUILT = "Rebuilt bakery\n\nThe bakery on Mill Street reopened in 1987.\n\nIts rye bread sells out by ten.\n"
FERRY = "Harbour ferry\n\nThe ferry to the island leaves at seven.\n\nIt carries forty cars.\n"


def _run(data: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CITEBOT_", "TELEGRAM_"))}
    environment.update(CITEBOT_DATA_DIR=str(data), NO_COLOR="1", **env)
    return subprocess.run([CITEBOT, *args], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library holding the bundled article, made once and copied by each test."""
    data = tmp_path_factory.mktemp("crash") / "data"
    made = _run(data, data.parent, "index")
    assert made.returncode == 0, made.stderr
    return data


def _state(data: Path) -> tuple[dict[int, int], list[str]]:
    """Return the catalog's ``{key: id}`` and the names in the vectors folder."""
    catalog = Catalog(data / CATALOG, readonly=True)
    try:
        keys = catalog.keys()
    finally:
        catalog.close()
    return keys, sorted(p.name for p in (data / VECTORS).iterdir())


@pytest.mark.parametrize("step", ADD_STEPS)
def test_kill_9_at_each_writing_step_of_add_leaves_a_consistent_library(
    template: Path, tmp_path: Path, step: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(template, data)
    (tmp_path / "bakery.txt").write_text(BAKERY)
    killed = _run(data, tmp_path, "add", "bakery.txt", **{KILL_AT: step})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    keys, files = _state(data)
    committed = step == "committed"
    assert sorted(keys.values()) == ([1, 2] if committed else [1])
    # Every row's vector file is there; a file no row names can only be this add's, left before its commit.
    assert {f"{key}.npy" for key in keys} <= set(files)
    assert len(files) == 2  # the vector file was written before each of these steps

    asked = _run(data, tmp_path, "ask", "When did the bakery open?")
    assert asked.returncode == 0 and asked.stderr == "", asked.stderr  # no damage found, nothing repaired
    assert ("1952" in asked.stdout) == committed

    again = _run(data, tmp_path, "add", "bakery.txt")
    assert again.returncode == 0, again.stderr
    said = "already in the library: [2] Village bakery" if committed else "added [2] Village bakery"
    assert again.stdout.startswith(said), again.stdout
    keys, files = _state(data)
    assert sorted(keys.values()) == [1, 2]
    assert files == sorted(f"{key}.npy" for key in keys)  # the crash's leftover was collected, nothing else
    asked = _run(data, tmp_path, "ask", "When did the bakery open?", "--in", "2")
    assert asked.returncode == 0 and "1952" in asked.stdout, asked.stderr


@pytest.fixture(scope="module")
def stocked(template: Path) -> Path:
    """The template library with the bakery (id 2) and the ferry (id 3) added, made once and copied by each test.

    Their files are in ``sources/`` beside it: a replacing add must name the same path (the source is the absolute
    path), so the tests that replace the bakery write its changed text there (the same text each time).
    """
    data = template.parent / "stocked"
    shutil.copytree(template, data)
    sources = template.parent / "sources"
    sources.mkdir()
    (sources / "bakery.txt").write_text(BAKERY)
    (sources / "ferry.txt").write_text(FERRY)
    added = _run(data, sources, "add", "bakery.txt", "ferry.txt")
    assert added.returncode == 0, added.stderr
    return data


def _listed(data: Path, cwd: Path) -> list[tuple[int, str]]:
    """Return ``citebot list --json``'s ``(id, title)`` pairs."""
    listed = _run(data, cwd, "list", "--json")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    return [(row["id"], row["title"]) for row in json.loads(listed.stdout)]


def _consistent_after_a_crash(data: Path, cwd: Path) -> dict[int, int]:
    """Assert what must hold after any kill: every row has its vector file, doctor is content; return ``{key: id}``."""
    keys, files = _state(data)
    assert {f"{key}.npy" for key in keys} <= set(files)  # never a row without its vector file
    doctor = _run(data, cwd, "doctor")
    assert doctor.returncode == 0, doctor.stdout  # a crash's leftover is harmless: a note, not a problem
    assert "problem" not in doctor.stdout, doctor.stdout
    return keys


def _next_writer_cleans(data: Path, cwd: Path) -> None:
    """Run another writer (a new add) and assert that only the rows' vector files are left."""
    (cwd / "mill.txt").write_text("Old mill\n\nThe mill on the river ground corn until 1931.\n")
    added = _run(data, cwd, "add", "mill.txt")
    assert added.returncode == 0 and "added [" in added.stdout, added.stderr
    keys, files = _state(data)
    assert files == sorted(f"{key}.npy" for key in keys)  # the crash's leftover was collected, nothing else


@pytest.mark.parametrize("step", REPLACE_STEPS)
def test_kill_9_at_each_writing_step_of_a_replacing_add_keeps_one_version(
    stocked: Path, tmp_path: Path, step: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(stocked, data)
    bakery = stocked.parent / "sources" / "bakery.txt"
    bakery.write_text(REBUILT)  # article 2's source, changed
    killed = _run(data, tmp_path, "add", str(bakery), **{KILL_AT: step})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    replaced = step in ("committed", "vector-deleted")

    keys = _consistent_after_a_crash(data, tmp_path)
    assert sorted(keys.values()) == [1, 2, 3]  # one row per article: the old version or the new, never both
    titles = dict(_listed(data, tmp_path))
    assert sorted(titles) == [1, 2, 3]
    assert titles[2] == ("Rebuilt bakery" if replaced else "Village bakery")
    asked = _run(data, tmp_path, "ask", "When did the bakery open?", "--in", "2")
    assert asked.returncode == 0 and asked.stderr == "", asked.stderr
    assert ("1987" in asked.stdout, "1952" in asked.stdout) == (replaced, not replaced), asked.stdout

    _next_writer_cleans(data, tmp_path)
    again = _run(data, tmp_path, "add", str(bakery))
    assert again.returncode == 0, again.stderr
    said = (
        "already in the library: [2] Rebuilt bakery"
        if replaced
        else "replaced the earlier version of [2] Rebuilt bakery"
    )
    assert again.stdout.startswith(said), again.stdout
    keys, files = _state(data)
    assert files == sorted(f"{key}.npy" for key in keys)
    assert dict(_listed(data, tmp_path))[2] == "Rebuilt bakery"


@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_kill_9_at_each_writing_step_of_remove_leaves_all_or_nothing(stocked: Path, tmp_path: Path, step: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(stocked, data)
    killed = _run(data, tmp_path, "remove", "2", "3", **{KILL_AT: step})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    removed = step != "catalog-open"

    keys = _consistent_after_a_crash(data, tmp_path)
    assert sorted(keys.values()) == ([1] if removed else [1, 2, 3])  # both removed or neither
    assert [i for i, _ in _listed(data, tmp_path)] == ([1] if removed else [1, 2, 3])
    asked = _run(data, tmp_path, "ask", "When did the bakery open?")
    assert asked.returncode == 0 and asked.stderr == "", asked.stderr
    assert ("1952" in asked.stdout) != removed, asked.stdout

    _next_writer_cleans(data, tmp_path)
