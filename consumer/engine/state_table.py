"""The state table: the recurrent state of every active sequence, as a structure of arrays.

Each key owns one slot: a row in one preallocated float32 array per state tensor, plus its step
count, the last input offset applied to it, its last output, its input partition and when it was
last seen: the record time (Kafka timestamp) of its newest applied record, restored from the
changelog, so idleness is judged on when samples were produced, not on when a worker read them.
Arrays grow by doubling and released slots are reused through a free list, so a million sequences
cost a few hundred bytes each instead of a Python object per tensor; keys are found through a
`KeyIndex` of numpy arrays, not a dictionary of Python strings and ints.

Keys that ended (end marker, max steps, idle eviction) are remembered with the offset they ended at
until their tombstone is durable: a crash between writing the end to the changelog and committing
the input offsets must not turn the replayed records into a new sequence.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from consumer.engine import compiled_loops
from consumer.engine.key_index import KeyIndex
from consumer.engine.mapped_arrays import grown, map_rows, reserved
from consumer.model.step import Float32Array

if compiled_loops.BUILT:
    from consumer.engine import _batch_loops

_INITIAL_CAPACITY = 1024
_Offsets = TypeVar("_Offsets", int, npt.NDArray[np.int64])
_G = TypeVar("_G", bound=np.generic)


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since the last `take_changes`, for the changelog: the slots whose state
    changed (in slot order) and the keys that ended."""

    slots: npt.NDArray[np.intp]
    ended: set[str]


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
        *,
        native: bool | None = None,
    ) -> None:
        """`native`: the compiled loops for lookups, state rows and one-step bookkeeping (None:
        where built; `consumer.engine.compiled_loops`)."""
        if initial_capacity < 1:
            raise ValueError("initial_capacity must be at least 1")
        self.native = compiled_loops.choose(native)
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
        # Slots whose state changed since the last `take_changes`: a flag per slot, not a set of
        # keys (a Python string a key between checkpoints).
        self.changed: npt.NDArray[np.bool_] = np.zeros(cap, np.bool_)
        self._index = KeyIndex(cap, native=self.native)
        self._free: list[int] = []
        self._high_water = 0
        # Rows whose memory is mapped and, past the high-water mark, holds each array's fill;
        # rows past it are reserved address space only (a restore reserves its rows at once).
        self._mapped = cap
        self._bound = 0  # while restoring: the most rows the restores can fill (`expect`)
        self._any_changed = False
        # Keys that ended since the last `take_changes` (their end goes to the changelog).
        self.ended_changed: set[str] = set()
        self.ended: dict[str, EndedKey] = {}
        # Per input partition, the newest record time read from it (seconds): its stream time.
        self.stream_time: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._index.get(key) is not None

    @property
    def capacity(self) -> int:
        return len(self.steps)

    @property
    def mapped_rows(self) -> int:
        """Rows whose memory is mapped; the rest of the capacity is reserved address space."""
        return self._mapped

    def slot_of(self, key: str) -> int | None:
        return self._index.get(key)

    def slots_of(self, keys: Sequence[str]) -> npt.NDArray[np.intp]:
        """Each key's slot, -1 for a key without one."""
        return self._index.lookup(keys)

    def key_of(self, slot: int) -> str | None:
        return self._index.key_of(slot)

    def raw_keys(self, slots: npt.NDArray[np.intp]) -> list[bytes]:
        """The UTF-8 bytes of the keys at these slots (each must hold one)."""
        return self._index.raw_keys(slots)

    def active_keys(self) -> list[str]:
        return [k for k in map(self._index.key_of, self._index.slots().tolist()) if k is not None]

    def allocate(self, key: str, partition: int) -> int:
        """A zeroed slot for a key that has none (a new sequence)."""
        if key in self:
            raise KeyError(f"key {key!r} already has a slot")
        if self._free:
            slot = self._free.pop()
        else:
            self._make_room(self._high_water + 1)
            slot = self._high_water
            self._high_water += 1
        self._index.add(key, slot)
        self.in_use[slot] = True
        self.partition[slot] = partition
        self.last_seen[slot] = 0.0  # a reused slot must not inherit its last key's time
        self.ended.pop(key, None)
        self.clear(slot)
        return slot

    def claim(self, keys: Sequence[str], partitions: npt.NDArray[np.int32]) -> npt.NDArray[np.intp]:
        """A slot for each of these distinct keys, its own or a new one, on its partition. A new
        slot is not zeroed: the caller writes every field (a restore does). New keys take free
        slots first, then the rows past the high-water mark in order (a restore's run of new
        keys is then one slice of rows)."""
        known = self._high_water - len(self._free)
        slots = self._index.lookup_or_insert(keys, self._take_slots)
        if self.ended and len(self._index) > known:
            for key, slot in zip(keys, slots.tolist(), strict=True):
                if not self.in_use[slot]:  # a new key
                    self.ended.pop(key, None)
        self.in_use[slots] = True
        self.partition[slots] = partitions
        return slots

    def allocate_many(
        self, keys: Sequence[str], partitions: npt.NDArray[np.int32]
    ) -> npt.NDArray[np.intp]:
        """Zeroed slots for distinct keys that have none (new sequences), as `allocate` each."""
        slots = self._take_slots(len(keys))
        self._index.insert(keys, slots)
        self.in_use[slots] = True
        self.partition[slots] = partitions
        self.last_seen[slots] = 0.0
        self.clear(slots)
        if self.ended:
            for key in keys:
                self.ended.pop(key, None)
        return slots

    def _take_slots(self, n: int) -> npt.NDArray[np.intp]:
        """`n` slots for new keys: free ones first, then rows past the high-water mark."""
        reused = [self._free.pop() for _ in range(min(n, len(self._free)))]
        rest = n - len(reused)
        first = self._high_water
        self._make_room(first + rest)
        self._high_water += rest
        return np.concatenate(
            [np.asarray(reused, np.intp), np.arange(first, first + rest, dtype=np.intp)]
        )

    def expect(self, keys: int) -> None:
        """A restore will add at most this many keys (it reads this many records). Until `fit`,
        the table reserves the rows the restores can fill at once, as address space, and maps
        their memory as the keys come, a doubling at a time, each in one call (a page's first
        write is a fault, several times dearer on a virtual machine that hands freed memory back
        to its host): no rows are copied and no memory is mapped twice while it grows."""
        if keys:
            self._bound = max(self._bound, self._high_water) + keys
            self._index.expect(keys)

    def fit(self) -> None:
        """The restores are over: rows they mapped and did not fill (a changelog not yet
        compacted holds several records of a key) are given back."""
        if not self._bound:
            return
        self._bound = 0
        self._index.fit()
        rows = max(self._high_water, _INITIAL_CAPACITY)
        if self.capacity > rows + rows // 4:
            self._resize(rows, populate=True)

    def clear(self, slot: int | npt.NDArray[np.intp]) -> None:
        """Zero a slot's (or slots') state: the state before a sequence's first sample."""
        for arr in self.states:
            arr[slot] = 0.0
        self.steps[slot] = 0
        self.last_output[slot] = 0.0

    def release(self, key: str) -> None:
        """Forget a key's state (its slot returns to the free list)."""
        slot = self._index.discard(key)
        if slot is None:
            raise KeyError(key)
        self.in_use[slot] = False
        self.changed[slot] = False
        self.last_offset[slot] = -1
        self._free.append(slot)

    def end(self, key: str, offset: int) -> None:
        """Release a key whose sequence ended, remembering where, until its tombstone is durable."""
        slot = self._index.get(key)
        if slot is None:
            raise KeyError(key)
        self.ended[key] = EndedKey(int(self.partition[slot]), offset)
        self.release(key)
        self.mark_ended(key)

    def gather_states(self, slots: npt.NDArray[np.intp]) -> list[Float32Array]:
        """Copies of these slots' state rows, one array per state tensor."""
        if self.native:
            rows = [np.empty((len(slots), s), np.float32) for s in self.state_sizes]
            _batch_loops.gather_rows(self.states, _intp(slots), rows)
            return rows
        return [np.take(arr, slots, axis=0) for arr in self.states]

    def scatter_states(self, slots: npt.NDArray[np.intp], states: Sequence[Float32Array]) -> None:
        """Write state rows back to their slots."""
        if self.native:
            wave = [np.ascontiguousarray(r, np.float32) for r in states]
            _batch_loops.scatter_rows(self.states, _intp(slots), wave)
            return
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
        self.changed[slot] = self._any_changed = True

    def record_one_step(
        self,
        slots: npt.NDArray[np.intp],
        offsets: npt.NDArray[np.int64],
        seen: npt.NDArray[np.float64],
        outputs: Float32Array,
    ) -> npt.NDArray[np.int32]:
        """Live sequences that each took one sample: their bookkeeping, and their new steps."""
        if self.native:
            steps = np.empty(len(slots), np.int32)
            _batch_loops.record_one_step(
                _intp(slots),
                np.ascontiguousarray(offsets, np.int64),
                np.ascontiguousarray(seen, np.float64),
                np.ascontiguousarray(outputs, np.float32),
                self.steps,
                self.last_offset,
                self.last_seen,
                self.last_output,
                self.changed,
                steps,
            )
            self._any_changed = True
            return steps
        steps = self.steps[slots] + 1
        self.steps[slots] = steps
        self.last_offset[slots] = offsets
        self.last_seen[slots] = np.maximum(self.last_seen[slots], seen)
        self.last_output[slots] = outputs
        self.changed[slots] = self._any_changed = True
        return steps

    def mark_changed(self, key: str) -> None:
        """The key's state is to be written to the changelog at the next snapshot."""
        slot = self._index.get(key)
        if slot is None:
            raise KeyError(key)
        self.changed[slot] = self._any_changed = True

    def mark_ended(self, key: str) -> None:
        """The key's end (in `ended`) is to be written to the changelog at the next snapshot."""
        self.ended_changed.add(key)

    def has_changes(self) -> bool:
        return self._any_changed or bool(self.ended_changed)

    def take_changes(self) -> Changes:
        hw = self._high_water
        slots = np.flatnonzero(self.changed[:hw]) if self._any_changed else np.zeros(0, np.intp)
        self.changed[slots] = False
        self._any_changed = False
        ended, self.ended_changed = self.ended_changed, set()
        return Changes(slots, ended)

    @property
    def dirty(self) -> set[str]:
        """The keys `take_changes` would hand over (changed states and ends), as strings."""
        hw = self._high_water
        keys = {self._index.key_of(s) for s in np.flatnonzero(self.changed[:hw]).tolist()}
        return {k for k in keys if k is not None} | self.ended_changed

    def take_dirty(self) -> set[str]:
        """`dirty`, taken: what `take_changes` does, as strings."""
        keys = self.dirty
        self.take_changes()
        return keys

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget every key of these input partitions (revoked or lost); returns how many."""
        wanted = np.fromiter(partitions, np.int32)
        hw = self._high_water
        mask = self.in_use[:hw] & np.isin(self.partition[:hw], wanted)
        slots = np.flatnonzero(mask)
        self._index.remove(slots)
        self.in_use[slots] = False
        self.changed[slots] = False  # their pending changelog work goes with them
        self.last_offset[slots] = -1
        self._free.extend(slots.tolist())
        dropped = len(slots)
        wanted_set = set(wanted.tolist())
        for key in [k for k, e in self.ended.items() if e.partition in wanted_set]:
            del self.ended[key]
            self.ended_changed.discard(key)
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
        if not np.count_nonzero(partitions != first):  # the common case: one partition
            newest = {first: float(times.max())}
        else:  # each partition's newest time in one pass, no sort (partition numbers are small)
            top = np.full(int(partitions.max()) + 1, -np.inf)
            with np.errstate(invalid="ignore"):  # a NaN time propagates, as max() does
                np.maximum.at(top, partitions, times)
            present = np.flatnonzero(np.bincount(partitions, minlength=len(top)))
            newest = dict(zip(present.tolist(), top[present].tolist(), strict=True))
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
        """Memory held for the table, its key index and bookkeeping included."""
        # Reserved rows not mapped yet cost address space only.
        total = sum(a.nbytes for a in self._arrays()) * self._mapped // max(self.capacity, 1)
        total += self._index.nbytes()
        total += sys.getsizeof(self._free) + sys.getsizeof(self.ended)
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
            return reserved(arr, rows, hw) if reserve else grown(arr, rows, hw, fill, populate)

        self.states = [resized(a, 0.0) for a in self.states]
        self.steps = resized(self.steps, 0)
        self.last_offset = resized(self.last_offset, -1)
        self.last_seen = resized(self.last_seen, 0.0)
        self.last_output = resized(self.last_output, 0.0)
        self.partition = resized(self.partition, 0)
        self.in_use = resized(self.in_use, False)
        self.changed = resized(self.changed, False)
        self._mapped = hw if reserve else rows
        self._index.resize(rows)

    def _map_rows(self, stop: int) -> None:
        """Map rows up to `stop`, in one call an array, and write the fill of the one array whose
        fill is not zero (a reserved row reads as zero)."""
        start = self._mapped
        for arr in self._arrays():
            map_rows(arr, start, stop)
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
            self.changed,
        ]


def replayed(offset: _Offsets, last_offset: _Offsets) -> bool | npt.NDArray[np.bool_]:
    """Whether a record (or each of an array of them) was applied already: its offset is not
    newer than the last one applied to its key's state. Such a record is read again after a
    crash or a rewind, and skipped: its outputs were delivered the first time."""
    return offset <= last_offset


def _intp(slots: npt.NDArray[np.integer]) -> npt.NDArray[np.intp]:
    """Slots as the compiled loops read them: contiguous machine-sized integers."""
    return np.ascontiguousarray(slots, np.intp)
