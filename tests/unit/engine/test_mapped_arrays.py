"""The table's own mappings: large ones ask for transparent huge pages, as numpy does for its
own large arrays (a batch's rows are scattered over the table: with 4 KiB pages most row reads
also walked the page table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from consumer.engine.mapped_arrays import anonymous_zeros

_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _mapping_entry(address: int) -> str:
    """This process's /proc/self/smaps entry for the mapping holding `address`."""
    entry: list[str] = []
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
            entry = [line] if inside else entry
        elif inside:
            entry.append(line)
    assert entry, f"no mapping holds {address:#x}"
    return "\n".join(entry)


def _eligible(entry: str) -> bool:
    (line,) = [x for x in entry.splitlines() if x.startswith("THPeligible:")]
    return line.split()[1] == "1"


def test_a_large_table_array_may_use_huge_pages_a_small_one_does_not_ask() -> None:
    mode = _THP_MODE.read_text()
    large = anonymous_zeros((8 << 20,), np.dtype(np.uint8))
    small = anonymous_zeros((1 << 20,), np.dtype(np.uint8))
    # Eligible whenever the kernel allows huge pages at all ("always" or "madvise").
    assert _eligible(_mapping_entry(large.ctypes.data)) == ("[never]" not in mode)
    if "[madvise]" in mode:  # only asked for: a small mapping stays on 4 KiB pages
        assert not _eligible(_mapping_entry(small.ctypes.data))
    large[::4096] = 1  # still ordinary zeroed, writable memory
    assert int(large.sum()) == (8 << 20) // 4096
