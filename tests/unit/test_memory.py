"""Handing freed memory back: asked of glibc where there is one, nothing elsewhere."""

from __future__ import annotations

import ctypes.util

import pytest

from consumer import memory


def test_glibc_is_asked_where_there_is_one() -> None:
    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        pytest.fail(f"this machine's C library is {name!r}; the test expects glibc")
    assert memory.release_free_memory() is True


def test_without_a_c_library_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
