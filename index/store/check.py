"""Checks of a data directory (``citebot doctor``): the directory, the catalog, the vector files; read-only.

Nothing here writes to the data directory or repairs anything: each check returns :class:`Finding` values saying
what is wrong and what to do. SQLite files are opened read-only (``mode=ro``), and, while no process has them open
(no ``-wal`` file beside them), also ``immutable``, so that opening creates no ``-wal``/``-shm`` files either.
Vector files are checked by the library's own loader (:func:`index.store.vectors.load_vectors`).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from index.analysis.background import background_ok
from index.errors import IndexCorruptError, LibraryError
from index.store.catalog import _SCHEMA, Catalog, readonly_uri
from index.store.library import CATALOG, VECTORS
from index.store.vectors import load_vectors

Status = Literal["ok", "note", "problem"]
#: A finding that needs no action.
OK: Status = "ok"
#: Worth knowing, nothing wrong (a library not created yet, a model change the next question will handle).
NOTE: Status = "note"
#: Something is wrong; the finding's ``fix`` says what to do.
PROBLEM: Status = "problem"

#: What to do about a damaged article's vectors: the library's reader mends them (LibraryIndex._load_one).
REEMBED = "nothing to do by hand: the next question (citebot ask, console or telegram) embeds it again from its text"
#: What to do about a damaged catalog.
RESTORE = (
    "restore the data directory from a backup, or move it aside and add the articles again "
    "(citebot add; the catalog holds the articles' text)"
)


@dataclass(frozen=True)
class Finding:
    """The outcome of one check.

    Attributes:
        check: what was checked, a short name ("catalog", "vectors", "setting"...).
        status: ``"ok"``, ``"note"`` (nothing wrong) or ``"problem"``.
        message: what was found, one line (may hold file names and titles: untrusted text).
        fix: what to do about it (for a problem), else ``""``.
    """

    check: str
    status: Status
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """Return the finding for ``citebot doctor --json``."""
        return {"check": self.check, "status": self.status, "message": self.message, "fix": self.fix}


def sqlite_damage(path: Path, deep: bool = False) -> str | None:
    """Return why the SQLite file ``path`` is unusable (unreadable, not SQLite, damaged), or ``None`` when it is sound.

    ``deep`` runs ``PRAGMA integrity_check`` (every index against its table), else ``quick_check``.
    """
    try:
        db = connect_readonly(path)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        rows = db.execute(f"PRAGMA {'integrity_check' if deep else 'quick_check'}(5)").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        db.close()
    messages = [str(row[0]) for row in rows]
    return None if messages == ["ok"] else "; ".join(messages)[:300]


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open ``path`` read-only, creating nothing beside it (immutable while no ``-wal`` file shows a user)."""
    idle = not path.with_name(path.name + "-wal").exists()
    return sqlite3.connect(readonly_uri(path, immutable=idle), uri=True, timeout=30)


def check_directory(data_dir: Path) -> Finding:
    """Return whether ``data_dir`` is (or can become) a writable directory, found without writing to it."""
    fix = "set CITEBOT_DATA_DIR to a writable directory"
    if data_dir.exists() and not data_dir.is_dir():
        return Finding("data directory", PROBLEM, f"{data_dir} is a file, not a directory", fix)
    if not data_dir.exists():
        parent = next((p for p in data_dir.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not _writable(parent):
            return Finding("data directory", PROBLEM, f"{data_dir} does not exist and cannot be created", fix)
        return Finding("data directory", NOTE, f"{data_dir} does not exist yet; the first citebot command creates it")
    if not _writable(data_dir):
        return Finding("data directory", PROBLEM, f"{data_dir} is not writable", fix)
    return Finding("data directory", OK, f"{data_dir} is a writable directory")


def _writable(directory: Path) -> bool:
    """Return whether files can be created in ``directory``: permissions and a file system not mounted read-only."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(directory).f_flag & os.ST_RDONLY
    except (OSError, AttributeError):  # no statvfs (Windows): the permission bits are all we know
        return True


def check_library(data_dir: Path, model: str | None = None, deep: bool = False) -> list[Finding]:
    """Check the library in ``data_dir``: its catalog, each article's stored text and vectors, stray vector files.

    ``model`` is the configured model name: a library embedded with another one is noted (it is embedded again at
    first use). ``deep`` runs SQLite's full integrity check instead of the quick one.
    """
    path = data_dir / CATALOG
    if not path.is_file():
        return [Finding("catalog", NOTE, f"no library in {data_dir} yet: the first question or add creates it")]
    damage = sqlite_damage(path, deep)
    if damage is not None:
        return [Finding("catalog", PROBLEM, f"{path} is damaged: {damage}", RESTORE)]
    schema = _schema_differences(path)
    if schema:
        return [Finding("catalog", PROBLEM, f"{path} is not a citebot catalog: {schema}", RESTORE)]
    try:
        catalog = Catalog(path, readonly=True, immutable=not path.with_name(path.name + "-wal").exists())
    except LibraryError as exc:
        return [Finding("catalog", PROBLEM, str(exc), RESTORE)]
    try:
        records = catalog.records()
        check = "integrity_check" if deep else "quick_check"
        found = [Finding("catalog", OK, f"{path}: {len(records)} articles, schema and {check} ok")]
        stored_model = catalog.get_meta("model")
        found += _model_note(stored_model, model, len(records))
        found += _articles(catalog, data_dir, stored_model)
        found += _strays(data_dir / VECTORS, set(catalog.keys()), catalog.last_key())
    finally:
        catalog.close()
    return found


def _schema_differences(path: Path) -> str:
    """Return how the catalog at ``path`` differs from citebot's schema (missing tables or columns), or ``""``."""
    expected = sqlite3.connect(":memory:")
    expected.executescript(_SCHEMA)
    db = connect_readonly(path)
    missing = []
    for (table,) in expected.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ):
        want = {row[1] for row in expected.execute(f"PRAGMA table_info({table})")}
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not have:
            missing.append(f"no table {table}")
        elif want - have:
            missing.append(f"table {table} lacks {', '.join(sorted(want - have))}")
    expected.close()
    db.close()
    return "; ".join(missing)


def _model_note(stored: str | None, model: str | None, articles: int) -> list[Finding]:
    """Return a note when the library's vectors were made by another model than ``model`` (``name:dimension``)."""
    if stored is None or model is None or not articles or stored.rsplit(":", 1)[0] == model.lower():
        return []
    message = (
        f"the library was embedded with {stored.rsplit(':', 1)[0]}, CITEBOT_MODEL is {model}: "
        f"the next question or add embeds its {articles} articles again"
    )
    return [Finding("model", NOTE, message)]


def model_dimension(stored_model: str | None) -> int | None:
    """Return the vector dimension the catalog's ``model`` entry (``name:dimension``) names, or ``None``."""
    dimension = (stored_model or "").rsplit(":", 1)[-1]
    return int(dimension) if ":" in (stored_model or "") and dimension.isdigit() else None


def _articles(catalog: Catalog, data_dir: Path, stored_model: str | None) -> list[Finding]:
    """Return a problem for each article whose text, vectors or background is damaged, or one ok line."""
    dimension = model_dimension(stored_model)
    found = []
    records = catalog.records()
    for record in records:
        name = f"article {record.id} ({record.label})"
        try:
            stored = catalog.text(record.key)
        except LibraryError as exc:
            fix = f"remove it (citebot remove {record.id}) and add it again"
            found.append(Finding("text", PROBLEM, f"{name}: {exc}", fix))
            continue
        try:
            load_vectors(
                data_dir / VECTORS / f"{record.key}.npy", record.vectors_sha256, len(stored.sentences), dimension
            )
        except IndexCorruptError as exc:
            found.append(Finding("vectors", PROBLEM, f"{name}: vectors/{exc}", REEMBED))
            continue
        if not background_ok(record.background_mean, record.background_std):
            found.append(Finding("vectors", PROBLEM, f"{name}: its background measure is out of range", REEMBED))
    if records and not found:
        found.append(Finding("vectors", OK, f"all {len(records)} articles' texts and vector files match the catalog"))
    return found


def _strays(folder: Path, keys: set[int], last_key: int) -> list[Finding]:
    """Return a note naming the files in ``folder`` that no article names (left by an interrupted write, harmless),
    and a problem naming those with a key the catalog never gave out (its writers refuse to change the library)."""
    if not folder.is_dir():
        return []
    names = sorted(
        p.name
        for p in folder.iterdir()
        if not (p.name.endswith(".npy") and p.name[:-4].isdigit() and int(p.name[:-4]) in keys)
    )
    foreign = [n for n in names if n.split(".")[0].isdigit() and int(n.split(".")[0]) > last_key]
    strays = [n for n in names if n not in foreign]
    found = []
    if strays:
        found.append(
            Finding(
                "vectors",
                NOTE,
                f"{_files(strays)} in {folder} that no article names: {_shown(strays)}",
                "left by an interrupted add or remove, harmless: the next citebot add or remove deletes them (doctor "
                "never deletes anything)",
            )
        )
    if foreign:
        message = f"{_files(foreign)} in {folder} with keys the catalog never gave out: {_shown(foreign)}"
        found.append(Finding("vectors", PROBLEM, message, f"the catalog is not the library's own: {RESTORE}"))
    return found


def _files(names: list[str]) -> str:
    """Return how many ``names`` there are, as "1 file" or "3 files"."""
    return f"{len(names)} file{'s' if len(names) != 1 else ''}"


def _shown(names: list[str]) -> str:
    """Return the first five of ``names``, comma-separated, and how many more there are."""
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
