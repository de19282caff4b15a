"""The state table: the recurrent state of every active sequence, as a structure of arrays.

Each key owns one slot: a row in one preallocated float32 array per state tensor, plus its step
count, the last input offset applied to it, its last output, its input partition and when it was
last seen: the record time (Kafka timestamp) of its newest applied record, restored from the
changelog, so idleness is judged on when samples were produced, not on when a worker read them.
Arrays grow by doubling and released slots are reused through a free list, so a million sequences
cost a few hundred bytes each instead of a Python object per tensor.

Keys that ended (end marker, max steps, idle eviction) are remembered with the offset they ended at
until their tombstone is durable: a crash between writing the end to the changelog and committing
the input offsets must not turn the replayed records into a new sequence.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from consumer.model.step import Float32Array

_INITIAL_CAPACITY = 1024
_Offsets = TypeVar("_Offsets", int, npt.NDArray[np.int64])
_G = TypeVar("_G", bound=np.generic)


@dataclass(frozen=True, slots=True)
class EndedKey:
    """A sequence that ended at `offset` of input `partition`; its tombstone is not yet durable."""

    partition: int
    offset: int


class StateTable:
    """Key -> slot, and per-slot arrays. Not thread-safe: one owner, the engine's caller."""

    def __init__(
        self,
        state_sizes: Sequence[int],
        n_outputs: int,
        initial_capacity: int = _INITIAL_CAPACITY,
    ) -> None:
        if initial_capacity < 1:
            raise ValueError("initial_capacity must be at least 1")
        self.state_sizes = tuple(state_sizes)
        self.n_outputs = n_outputs
        cap = initial_capacity
        self.states: list[Float32Array] = [np.zeros((cap, s), np.float32) for s in state_sizes]
        self.steps: npt.NDArray[np.int32] = np.zeros(cap, np.int32)
        self.last_offset: npt.NDArray[np.int64] = np.full(cap, -1, np.int64)
        self.last_seen: npt.NDArray[np.float64] = np.zeros(cap, np.float64)
        self.last_output: Float32Array = np.zeros((cap, n_outputs), np.float32)
        self.partition: npt.NDArray[np.int32] = np.zeros(cap, np.int32)
        self.in_use: npt.NDArray[np.bool_] = np.zeros(cap, np.bool_)
        self._slots: dict[str, int] = {}
        self._keys: list[str | None] = [None] * cap
        self._free: list[int] = []
        self._high_water = 0
        # Rows whose memory is mapped and, past the high-water mark, holds each array's fill;
        # rows past it are reserved address space only (a restore reserves its rows at once).
        self._mapped = cap
        self._bound = 0  # while restoring: the most rows the restores can fill (`expect`)
        # Keys whose state changed since the last `take_dirty`, for the changelog.
        self.dirty: set[str] = set()
        self.ended: dict[str, EndedKey] = {}
        # Per input partition, the newest record time read from it (seconds): its stream time.
        self.stream_time: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    @property
    def capacity(self) -> int:
        return len(self._keys)

    @property
    def mapped_rows(self) -> int:
        """Rows whose memory is mapped; the rest of the capacity is reserved address space."""
        return self._mapped

    def slot_of(self, key: str) -> int | None:
        return self._slots.get(key)

    def slots_of(self, keys: Sequence[str]) -> npt.NDArray[np.intp]:
        """Each key's slot, -1 for a key without one."""
        return np.fromiter(map(self._slots.get, keys, itertools.repeat(-1)), np.intp, len(keys))

    def key_of(self, slot: int) -> str | None:
        return self._keys[slot]

    def active_keys(self) -> list[str]:
        return list(self._slots)

    def allocate(self, key: str, partition: int) -> int:
        """A zeroed slot for a key that has none (a new sequence)."""
        if key in self._slots:
            raise KeyError(f"key {key!r} already has a slot")
        if self._free:
            slot = self._free.pop()
        else:
            self._make_room(self._high_water + 1)
            slot = self._high_water
            self._high_water += 1
        self._slots[key] = slot
        self._keys[slot] = key
        self.in_use[slot] = True
        self.partition[slot] = partition
        self.last_seen[slot] = 0.0  # a reused slot must not inherit its last key's time
        self.ended.pop(key, None)
        self.clear(slot)
        return slot

    def claim(self, keys: Sequence[str], partitions: npt.NDArray[np.int32]) -> npt.NDArray[np.intp]:
        """A slot for each of these distinct keys, its own or a new one, on its partition. A new
        slot is not zeroed: the caller writes every field (a restore does)."""
        slots = self._claim_each(keys) if self._free else self._claim_fresh(keys)
        self.in_use[slots] = True
        self.partition[slots] = partitions
        return slots

    def _claim_fresh(self, keys: Sequence[str]) -> npt.NDArray[np.intp]:
        """No free slot, as in a restore: new keys take the rows past the high-water mark, in
        order. Where the rows are there, one dictionary call per key, `setdefault`, which finds a
        known key's slot and numbers a new one at once (asking first, then inserting, took half
        as long again); where the table must grow, the new keys are counted first, so that keys
        already known grow nothing."""
        n, first = len(keys), self._high_water
        numbered = first + n <= self._mapped
        if numbered:
            slots = np.fromiter(
                map(self._slots.setdefault, keys, range(first, first + n)), np.intp, n
            )
            new = slots == np.arange(first, first + n, dtype=np.intp)
        else:
            slots = self.slots_of(keys)
            new = slots < 0
            self._make_room(first + int(np.count_nonzero(new)))
        if numbered and new.all():
            fresh = list(keys)
        else:  # known keys keep their slots, new ones are numbered without gaps
            at = np.flatnonzero(new)
            fresh = [keys[i] for i in at.tolist()]
            numbers = range(first, first + len(fresh))
            slots[at] = numbers
            self._slots.update(zip(fresh, numbers, strict=True))
        self._keys[first : first + len(fresh)] = fresh
        self._high_water += len(fresh)
        if self.ended:
            for key in fresh:
                self.ended.pop(key, None)
        return slots

    def _claim_each(self, keys: Sequence[str]) -> npt.NDArray[np.intp]:
        """Free slots first (a table that ended sequences), then rows past the high-water mark."""
        slots = self.slots_of(keys)
        new = np.flatnonzero(slots < 0).tolist()
        self._make_room(self._high_water + len(new) - len(self._free))
        for i in new:
            key = keys[i]
            if self._free:
                slot = self._free.pop()
            else:
                slot = self._high_water
                self._high_water += 1
            self._slots[key] = slot
            self._keys[slot] = key
            self.ended.pop(key, None)
            slots[i] = slot
        return slots

    def expect(self, keys: int) -> None:
        """A restore will add at most this many keys (it reads this many records). Until `fit`,
        the table reserves the rows the restores can fill at once, as address space, and maps
        their memory as the keys come, a doubling at a time, each in one call (a page's first
        write is a fault, several times dearer on a virtual machine that hands freed memory back
        to its host): no rows are copied and no memory is mapped twice while it grows."""
        if keys:
            self._bound = max(self._bound, self._high_water) + keys

    def fit(self) -> None:
        """The restores are over: rows they mapped and did not fill (a changelog not yet
        compacted holds several records of a key) are given back."""
        if not self._bound:
            return
        self._bound = 0
        rows = max(self._high_water, _INITIAL_CAPACITY)
        if self.capacity > rows + rows // 4:
            self._resize(rows, populate=True)

    def clear(self, slot: int) -> None:
        """Zero a slot's state: the state before a sequence's first sample."""
        for arr in self.states:
            arr[slot] = 0.0
        self.steps[slot] = 0
        self.last_output[slot] = 0.0

    def release(self, key: str) -> None:
        """Forget a key's state (its slot returns to the free list)."""
        slot = self._slots.pop(key)
        self._keys[slot] = None
        self.in_use[slot] = False
        self.last_offset[slot] = -1
        self._free.append(slot)

    def end(self, key: str, offset: int) -> None:
        """Release a key whose sequence ended, remembering where, until its tombstone is durable."""
        slot = self._slots[key]
        self.ended[key] = EndedKey(int(self.partition[slot]), offset)
        self.release(key)
        self.dirty.add(key)

    def gather_states(self, slots: npt.NDArray[np.intp]) -> list[Float32Array]:
        """Copies of these slots' state rows, one array per state tensor."""
        return [np.take(arr, slots, axis=0) for arr in self.states]

    def scatter_states(self, slots: npt.NDArray[np.intp], states: Sequence[Float32Array]) -> None:
        """Write state rows back to their slots."""
        for arr, rows in zip(self.states, states, strict=True):
            arr[slots] = rows

    def record_progress(
        self,
        key: str,
        slot: int,
        *,
        step: int,
        last_offset: int,
        seen: float,
        last_output: Float32Array | None,
    ) -> None:
        """A live sequence's bookkeeping after a batch (`last_output` None: no new sample)."""
        self.steps[slot] = step
        self.last_offset[slot] = last_offset
        self.last_seen[slot] = seen
        if last_output is not None:
            self.last_output[slot] = last_output
        self.dirty.add(key)

    def record_one_step(
        self,
        keys: Sequence[str],
        slots: npt.NDArray[np.intp],
        offsets: npt.NDArray[np.int64],
        seen: npt.NDArray[np.float64],
        outputs: Float32Array,
    ) -> npt.NDArray[np.int32]:
        """Live sequences that each took one sample: their bookkeeping, and their new steps."""
        steps: npt.NDArray[np.int32] = self.steps[slots] + 1
        self.steps[slots] = steps
        self.last_offset[slots] = offsets
        self.last_seen[slots] = np.maximum(self.last_seen[slots], seen)
        self.last_output[slots] = outputs
        self.dirty.update(keys)
        return steps

    def take_dirty(self) -> set[str]:
        taken, self.dirty = self.dirty, set()
        return taken

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget every key of these input partitions (revoked or lost); returns how many."""
        wanted = np.fromiter(partitions, np.int32)
        hw = self._high_water
        mask = self.in_use[:hw] & np.isin(self.partition[:hw], wanted)
        dropped = 0
        for slot in np.flatnonzero(mask).tolist():
            key = self._keys[slot]
            assert key is not None
            self.release(key)
            self.dirty.discard(key)
            dropped += 1
        wanted_set = set(wanted.tolist())
        for key in [k for k, e in self.ended.items() if e.partition in wanted_set]:
            del self.ended[key]
            self.dirty.discard(key)
        for p in wanted_set:
            self.stream_time.pop(p, None)
        return dropped

    def advance_stream_time(
        self, partitions: npt.NDArray[np.int64], times: npt.NDArray[np.float64]
    ) -> None:
        """Each partition's stream time moves to the newest of its record times, never back."""
        if not len(partitions):
            return
        clock = self.stream_time
        first = int(partitions[0])
        if (partitions == first).all():  # the common case: one partition, no sort
            newest = {first: float(times.max())}
        else:
            newest = {int(p): float(times[partitions == p].max()) for p in np.unique(partitions)}
        for p, t in newest.items():
            if t > clock.get(p, -np.inf):
                clock[p] = t

    def idle_slots(self, before: Mapping[int, float]) -> npt.NDArray[np.intp]:
        """Slots of active keys of the partitions in `before` last seen before `before[p]`."""
        hw = self._high_water
        if not before or not hw:
            return np.zeros(0, np.intp)
        parts = self.partition[:hw]
        bound = np.full(max(int(parts.max()), *before) + 1, -np.inf)
        bound[list(before)] = list(before.values())
        return np.flatnonzero(self.in_use[:hw] & (self.last_seen[:hw] < bound[parts]))

    def nbytes(self) -> int:
        """Memory held for the table, keys and bookkeeping included (an estimate for the keys)."""
        # Reserved rows not mapped yet cost address space only.
        total = sum(a.nbytes for a in self._arrays()) * self._mapped // max(self.capacity, 1)
        total += sys.getsizeof(self._slots) + sys.getsizeof(self._keys)
        total += sys.getsizeof(self._free) + sys.getsizeof(self.ended)
        # Key strings and slot ints: sample rather than walk a million objects.
        n = len(self._slots)
        if n:
            sample = list(itertools.islice(self._slots.items(), 256))
            per_key = sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in sample) / len(sample)
            total += int(per_key * n)
        return total

    def _make_room(self, rows: int) -> None:
        """Mapped memory for `rows` rows. Past the capacity: while restoring, the rows the
        restores can fill are reserved (live keys may have taken the restores' room: then the
        table doubles), and otherwise the capacity doubles as often as needed, all mapped."""
        if rows <= self._mapped:
            return
        if rows > self.capacity:
            if rows <= self._bound:
                self._resize(self._bound, reserve=True)
            else:
                doubled = self.capacity * 2
                while doubled < rows:
                    doubled *= 2
                self._resize(doubled)
                return
        self._map_rows(min(self.capacity, max(rows, 2 * self._mapped)))

    def _resize(self, rows: int, *, populate: bool = False, reserve: bool = False) -> None:
        """To `rows` rows (never fewer than the high-water mark). `reserve`: only the rows in use
        are mapped; `populate`: all of them at once; neither: page by page as they are written."""
        hw = self._high_water

        def resized(arr: npt.NDArray[_G], fill: float | bool) -> npt.NDArray[_G]:
            return _reserved(arr, rows, hw) if reserve else _grown(arr, rows, hw, fill, populate)

        self.states = [resized(a, 0.0) for a in self.states]
        self.steps = resized(self.steps, 0)
        self.last_offset = resized(self.last_offset, -1)
        self.last_seen = resized(self.last_seen, 0.0)
        self.last_output = resized(self.last_output, 0.0)
        self.partition = resized(self.partition, 0)
        self.in_use = resized(self.in_use, False)
        self._mapped = hw if reserve else rows
        if rows > len(self._keys):
            self._keys.extend([None] * (rows - len(self._keys)))
        else:
            del self._keys[rows:]

    def _map_rows(self, stop: int) -> None:
        """Map rows up to `stop`, in one call an array, and write the fill of the one array whose
        fill is not zero (a reserved row reads as zero)."""
        start = self._mapped
        for arr in self._arrays():
            _map(arr, start, stop)
        self.last_offset[start:stop] = -1
        self._mapped = stop

    def _arrays(self) -> list[npt.NDArray[np.generic]]:
        return [
            *self.states,
            self.steps,
            self.last_offset,
            self.last_seen,
            self.last_output,
            self.partition,
            self.in_use,
        ]


def _grown(
    arr: npt.NDArray[_G], rows: int, used: int, fill: float | bool, populate: bool
) -> npt.NDArray[_G]:
    """`arr` with `rows` rows; only the `used` rows are copied, as every row past them still holds
    `fill`. Zeros come from calloc: new rows cost no memory, nor time to write, until used (so
    growing a table several times before it fills costs nothing), unless `populate`."""
    shape = (rows, *arr.shape[1:])
    out = _populated_zeros(shape, arr.dtype) if populate else np.zeros(shape, arr.dtype)
    out[:used] = arr[:used]
    if fill:
        out[used:] = fill
    return out


_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only
_MADV_POPULATE_WRITE = 23  # Linux 5.14; the mmap module names it only from Python 3.13


def _populated_zeros(shape: tuple[int, ...], dtype: np.dtype[_G]) -> npt.NDArray[_G]:
    """Zeros whose memory is mapped at once: one call instead of a fault per page."""
    return _anonymous_zeros(shape, dtype, populate=True)


def _reserved(arr: npt.NDArray[_G], rows: int, used: int) -> npt.NDArray[_G]:
    """`arr` with `rows` rows of address space, of which only the `used` rows, copied, are
    mapped; the others read as zeros and cost no memory until `_map` maps them."""
    out = _anonymous_zeros((rows, *arr.shape[1:]), arr.dtype, populate=False)
    _map(out, 0, used)
    out[:used] = arr[:used]
    return out


def _anonymous_zeros(
    shape: tuple[int, ...], dtype: np.dtype[_G], *, populate: bool
) -> npt.NDArray[_G]:
    """Zeros in an anonymous mapping of their own, mapped at once if `populate`; calloc's zeros
    (unmapped until written, too) where the array is under a page or the system is not Linux."""
    size = int(np.prod(shape)) * dtype.itemsize
    if not _MAP_POPULATE or size < mmap.PAGESIZE:
        return np.zeros(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (_MAP_POPULATE if populate else 0)
    # The array holds the mapping; it is unmapped when the array goes.
    return np.frombuffer(mmap.mmap(-1, size, flags=flags), dtype).reshape(shape)


def _map(arr: npt.NDArray[np.generic], start: int, stop: int) -> None:
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


def replayed(offset: _Offsets, last_offset: _Offsets) -> bool | npt.NDArray[np.bool_]:
    """Whether a record (or each of an array of them) was applied already: its offset is not
    newer than the last one applied to its key's state. Such a record is read again after a
    crash or a rewind, and skipped: its outputs were delivered the first time."""
    return offset <= last_offset
