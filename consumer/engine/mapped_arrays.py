"""Numpy arrays in anonymous memory mappings of their own: grown, reserved and mapped.

An array freed back to the C heap can stay resident: glibc serves mid-sized blocks from its heap
once large ones have been freed (its mmap threshold rises to the largest freed block, up to
32 MiB), and hands heap memory back only from the top. A table that grows by doubling would then
keep the memory of every size it outgrew. An array here holds a mapping of its own, unmapped when
the array goes; rows can be reserved as address space and mapped later, in one call.
"""

from __future__ import annotations

import contextlib
import mmap
from typing import TypeVar

import numpy as np
import numpy.typing as npt

_G = TypeVar("_G", bound=np.generic)


def grown(
    arr: npt.NDArray[_G], rows: int, used: int, fill: float | bool, populate: bool
) -> npt.NDArray[_G]:
    """`arr` with `rows` rows; only the `used` rows are copied, as every row past them still holds
    `fill`. New rows cost no memory, nor time to write, until used (so growing a table several
    times before it fills costs nothing), unless `populate`."""
    shape = (rows, *arr.shape[1:])
    out = anonymous_zeros(shape, arr.dtype, populate=populate)
    out[:used] = arr[:used]
    if fill:
        out[used:] = fill
    return out


_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only
_HUGE_PAGES_FROM = 4 << 20  # numpy's own threshold for asking
_MADV_POPULATE_WRITE = 23  # Linux 5.14; the mmap module names it only from Python 3.13


def reserved(arr: npt.NDArray[_G], rows: int, used: int) -> npt.NDArray[_G]:
    """`arr` with `rows` rows of address space, of which only the `used` rows, copied, are
    mapped; the others read as zeros and cost no memory until `map_rows` maps them."""
    out = anonymous_zeros((rows, *arr.shape[1:]), arr.dtype, populate=False)
    map_rows(out, 0, used)
    out[:used] = arr[:used]
    return out


def anonymous_zeros(
    shape: tuple[int, ...], dtype: np.dtype[_G], *, populate: bool = False
) -> npt.NDArray[_G]:
    """Zeros in an anonymous mapping of their own, mapped at once if `populate` (one call instead
    of a fault per page), else page by page as they are written; calloc's zeros where the array
    is under a page or the system is not Linux."""
    size = int(np.prod(shape)) * dtype.itemsize
    if not _MAP_POPULATE or size < mmap.PAGESIZE:
        return np.zeros(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (_MAP_POPULATE if populate else 0)
    mapping = mmap.mmap(-1, size, flags=flags)
    if size >= _HUGE_PAGES_FROM and _MADV_HUGEPAGE is not None:
        # Huge pages, as numpy asks for its own large arrays: a batch's rows are scattered over
        # the table, and with 4 KiB pages nearly every row read was also a page-table walk.
        with contextlib.suppress(OSError):  # transparent huge pages off: small pages it is
            mapping.madvise(_MADV_HUGEPAGE)
    # The array holds the mapping; it is unmapped when the array goes.
    return np.frombuffer(mapping, dtype).reshape(shape)


def map_rows(arr: npt.NDArray[np.generic], start: int, stop: int) -> None:
    """Map the memory of rows `start` to `stop` of a reserved array in one call (or, where the
    kernel cannot, with a write to each page not mapped yet: rows before `start` hold data)."""
    if stop <= start:
        return
    row = arr.strides[0]
    first, end = start * row, stop * row
    mapping = _mapping_of(arr)
    if mapping is not None:
        page = mmap.PAGESIZE
        with contextlib.suppress(OSError):  # a kernel before 5.14: the writes below
            at = first - first % page
            mapping.madvise(_MADV_POPULATE_WRITE, at, min(end, len(mapping)) - at)
            return
    raw = arr.reshape(-1).view(np.uint8)
    unmapped = -(-first // mmap.PAGESIZE) * mmap.PAGESIZE  # the first page no row before uses
    raw[unmapped : end : mmap.PAGESIZE] = 0


def _mapping_of(arr: npt.NDArray[np.generic]) -> mmap.mmap | None:
    base: object = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None
