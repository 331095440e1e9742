"""A small file system of the test's own (a tmpfs; needs root to mount): for a full disk or a read-only one."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at the new directory ``where`` for the block (the test is skipped if it cannot)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount_read_only(where: Path) -> None:
    """Make the tmpfs at ``where`` read-only (the test is skipped if it cannot)."""
    if subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount read-only here")
