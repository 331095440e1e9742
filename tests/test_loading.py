"""bot/loading.py: what front ends share beyond opening the library."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from bot.loading import trim_heap


@pytest.mark.skipif(platform.system() != "Linux" or ctypes.util.find_library("c") is None, reason="glibc only")
def test_trim_heap_reaches_glibc() -> None:
    assert trim_heap() is True
