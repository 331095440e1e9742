"""``kill -9`` of a real ``citebot add`` at each step that writes: the library stays consistent and keeps what was
committed. The process kills itself at the step named by the test-only ``CITEBOT_TEST_KILL_AT``
(:mod:`index.store.crash`), so every run lands exactly there, not wherever a timer happened to fire."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from index.store.catalog import Catalog
from index.store.crash import KILL_AT, STEPS
from index.store.library import CATALOG, VECTORS
from tests.support.paths import CITEBOT

pytestmark = pytest.mark.slow  # runs real citebot processes

BAKERY = "Village bakery\n\nThe bakery on Mill Street opened in 1952.\n\nIts rye bread sells out by nine.\n"


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


@pytest.mark.parametrize("step", STEPS)
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
