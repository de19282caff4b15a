"""Changelog records: one key's state (or the fact that its sequence ended) as compact bytes.

Layout, little-endian: magic `LSS1`, flags (bit 0: ended), model-version length and bytes, the
input offset the state reflects, the step count, the last-seen record time, the output width
and state width, then the last output and every state tensor as float32. Binary rather than JSON
because a restore reads a million of these and float32 must round-trip bit for bit.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from consumer.engine.state_table import EndedKey, StateTable
from consumer.model.step import Float32Array

_MAGIC = b"LSS1"
_HEAD = struct.Struct("<4sBB")
_BODY = struct.Struct("<qidHI")
_ENDED = 1

RestoreOutcome = Literal["restored", "ended", "version_mismatch", "corrupt"]
ChangelogOutcome = RestoreOutcome | Literal["tombstone"]


class CorruptSnapshotError(ValueError):
    """A changelog value that is not a state record of this format."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    model_version: str
    ended: bool
    offset: int
    step: int
    last_seen: float
    last_output: Float32Array
    state: Float32Array  # every state tensor of the key, concatenated in plan order


def encode_state(table: StateTable, key: str, model_version: str) -> bytes:
    slot = table.slot_of(key)
    if slot is None:
        raise KeyError(key)
    parts = [table.last_output[slot], *(arr[slot] for arr in table.states)]
    floats = np.concatenate(parts).astype(np.float32, copy=False)
    body = _BODY.pack(
        int(table.last_offset[slot]),
        int(table.steps[slot]),
        float(table.last_seen[slot]),
        table.n_outputs,
        len(floats) - table.n_outputs,
    )
    return _header(model_version, 0) + body + floats.tobytes()


def encode_states(
    table: StateTable, slots: npt.NDArray[np.intp], model_version: str
) -> list[bytes]:
    """`encode_state` for many slots at once, byte for byte the same."""
    return cut_rows(state_rows(table, slots, model_version))


def state_rows(
    table: StateTable, slots: npt.NDArray[np.intp], model_version: str
) -> npt.NDArray[np.void]:
    """The records `encode_state` writes for `slots`, as one numpy array (the records have one
    fixed layout, so they are written column by column): a copy, so the table may move on."""
    n_out = table.n_outputs
    head = _header(model_version, 0)
    layout = _layout(len(head), n_out + sum(table.state_sizes))
    rows = np.empty(len(slots), layout)
    rows["head"] = np.frombuffer(head, np.uint8)
    rows["offset"] = table.last_offset[slots]
    rows["step"] = table.steps[slots]
    rows["last_seen"] = table.last_seen[slots]
    rows["n_out"] = n_out
    rows["n_state"] = layout["floats"].shape[0] - n_out
    floats = rows["floats"]
    floats[:, :n_out] = table.last_output[slots]
    start = n_out
    for arr, size in zip(table.states, table.state_sizes, strict=True):
        floats[:, start : start + size] = arr[slots]
        start += size
    return rows


def cut_rows(rows: npt.NDArray[np.void]) -> list[bytes]:
    """`state_rows` as one value per record."""
    data, size = rows.tobytes(), rows.dtype.itemsize
    return [data[i : i + size] for i in range(0, len(data), size)]


def encode_ended(ended: EndedKey, model_version: str) -> bytes:
    body = _BODY.pack(ended.offset, 0, 0.0, 0, 0)
    return _header(model_version, _ENDED) + body


def record_version(value: bytes) -> str:
    """The model version a record was written under (CorruptSnapshotError if unreadable)."""
    try:
        magic, _flags, vlen = _HEAD.unpack_from(value, 0)
        if magic != _MAGIC:
            raise CorruptSnapshotError("not a state record (bad magic)")
        return value[_HEAD.size : _HEAD.size + vlen].decode("ascii")
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptSnapshotError(f"truncated or malformed state record: {exc}") from exc


def decode(value: bytes) -> Snapshot:
    try:
        magic, flags, vlen = _HEAD.unpack_from(value, 0)
        if magic != _MAGIC:
            raise CorruptSnapshotError("not a state record (bad magic)")
        pos = _HEAD.size
        version = value[pos : pos + vlen].decode("ascii")
        pos += vlen
        offset, step, last_seen, n_out, n_state = _BODY.unpack_from(value, pos)
        pos += _BODY.size
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptSnapshotError(f"truncated or malformed state record: {exc}") from exc
    floats = np.frombuffer(value, np.float32, offset=pos) if pos < len(value) else _EMPTY
    if len(floats) != n_out + n_state:
        raise CorruptSnapshotError(f"expected {n_out + n_state} floats, found {len(floats)}")
    return Snapshot(
        model_version=version,
        ended=bool(flags & _ENDED),
        offset=offset,
        step=step,
        last_seen=last_seen,
        last_output=floats[:n_out],
        state=floats[n_out:],
    )


def apply_record(
    table: StateTable, key: str, partition: int, value: bytes, model_version: str
) -> RestoreOutcome:
    """Apply one changelog record to the table (the newest record of a key wins). A corrupt
    record forgets the key: an older state must not stand in for the newest one."""
    try:
        snap = decode(value)
    except CorruptSnapshotError:
        forget(table, key)
        return "corrupt"
    outcome = _outcome(table, snap, model_version)
    if outcome != "restored":
        forget(table, key)
        if outcome == "ended":
            table.ended[key] = EndedKey(partition, snap.offset)
        return outcome
    slot = table.slot_of(key)
    if slot is None:
        slot = table.allocate(key, partition)
    table.partition[slot] = partition
    table.steps[slot] = snap.step
    table.last_offset[slot] = snap.offset
    table.last_seen[slot] = snap.last_seen
    table.last_output[slot] = snap.last_output
    start = 0
    for arr, size in zip(table.states, table.state_sizes, strict=True):
        arr[slot] = snap.state[start : start + size]
        start += size
    return "restored"


def apply_records(
    table: StateTable,
    keys: Sequence[str],
    partitions: Sequence[int],
    values: Sequence[bytes | None],
    model_version: str,
) -> list[ChangelogOutcome]:
    """Apply a batch of changelog records (None: a tombstone) in order, leaving the table as
    `apply_record` and `forget` one by one would; the outcome of each record. Only the newest
    record of a key decides its state, so only that one is applied, the others only classified.
    The records of the common kind, a live state of this model version and shape, have one fixed
    layout: they are read together as one numpy array, and written to the table column by column.
    """
    n_out = table.n_outputs
    width = n_out + sum(table.state_sizes)
    head = _header(model_version, 0)
    layout = _layout(len(head), width)
    newest = dict(zip(keys, range(len(keys)), strict=True))
    if _all_of_layout(values, layout.itemsize):
        # The common batch (a restore of a compacted changelog): every record a live state.
        rows = np.frombuffer(b"".join(cast(list[bytes], values)), layout)
        if _states_of(rows, head, n_out, width).all():
            if len(newest) == len(keys):
                _write_rows(table, keys, partitions, rows, n_out)
            else:
                chosen = list(newest.values())
                _write_rows(
                    table, list(newest), [partitions[i] for i in chosen], rows[chosen], n_out
                )
            return ["restored"] * len(values)
    outcomes: list[ChangelogOutcome] = ["restored"] * len(values)
    fast = [i for i, v in enumerate(values) if v is not None and len(v) == layout.itemsize]
    rows = np.frombuffer(b"".join([values[i] or b"" for i in fast]), layout)
    ok = _states_of(rows, head, n_out, width)
    fast_ok = {i for i, good in zip(fast, ok.tolist(), strict=True) if good}
    for i, value in enumerate(values):
        if i in fast_ok:
            continue
        key, last = keys[i], newest[keys[i]] == i
        if value is None:
            outcomes[i] = "tombstone"
            if last:
                forget(table, key)
        elif last:
            outcomes[i] = apply_record(table, key, partitions[i], value, model_version)
        else:
            outcomes[i] = _classify(table, value, model_version)
    chosen = [j for j, i in enumerate(fast) if i in fast_ok and newest[keys[i]] == i]
    if chosen:
        indices = [fast[j] for j in chosen]
        _write_rows(
            table, [keys[i] for i in indices], [partitions[i] for i in indices], rows[chosen], n_out
        )
    return outcomes


def _all_of_layout(values: Sequence[bytes | None], itemsize: int) -> bool:
    try:
        return set(map(len, cast(Sequence[bytes], values))) == {itemsize}
    except TypeError:  # a tombstone
        return False


def _run_of(slots: npt.NDArray[np.intp]) -> npt.NDArray[np.intp] | slice:
    """Consecutive slots (a restore's new keys) as a slice: rows are then copied, not scattered."""
    if len(slots) > 1 and (np.diff(slots) == 1).all():
        return slice(int(slots[0]), int(slots[-1]) + 1)
    return slots


def _states_of(
    rows: npt.NDArray[np.void], head: bytes, n_out: int, width: int
) -> npt.NDArray[np.bool_]:
    """Which records of the state layout are live states of this version and shape."""
    ok: npt.NDArray[np.bool_] = (rows["head"] == np.frombuffer(head, np.uint8)).all(axis=1)
    ok &= (rows["n_out"] == n_out) & (rows["n_state"] == width - n_out)
    return ok


def _write_rows(
    table: StateTable,
    keys: Sequence[str],
    partitions: Sequence[int],
    rows: npt.NDArray[np.void],
    n_out: int,
) -> None:
    """Live states of distinct keys into their slots, column by column."""
    claimed = table.claim(keys, np.array(partitions, np.int32))
    slots = _run_of(claimed)
    table.steps[slots] = rows["step"]
    table.last_offset[slots] = rows["offset"]
    table.last_seen[slots] = rows["last_seen"]
    floats = rows["floats"]
    table.last_output[slots] = floats[:, :n_out]
    start = n_out
    for arr, size in zip(table.states, table.state_sizes, strict=True):
        arr[slots] = floats[:, start : start + size]
        start += size


@functools.cache
def _layout(head_bytes: int, width: int) -> np.dtype[np.void]:
    """A live state record as one numpy record (packed, little-endian, as `encode_state`)."""
    return np.dtype(
        [
            ("head", np.uint8, (head_bytes,)),
            ("offset", "<i8"),
            ("step", "<i4"),
            ("last_seen", "<f8"),
            ("n_out", "<u2"),
            ("n_state", "<u4"),
            ("floats", "<f4", (width,)),
        ]
    )


def _classify(table: StateTable, value: bytes, model_version: str) -> RestoreOutcome:
    """What `apply_record` would return for this record, without applying it."""
    try:
        return _outcome(table, decode(value), model_version)
    except CorruptSnapshotError:
        return "corrupt"


def _outcome(table: StateTable, snap: Snapshot, model_version: str) -> RestoreOutcome:
    # An end guards against replays whatever version the sequence ran on.
    if snap.ended:
        return "ended"
    if snap.model_version != model_version:
        return "version_mismatch"
    if _wrong_shape(table, snap):
        return "corrupt"
    return "restored"


def corrupt_reason(table: StateTable, value: bytes) -> str:
    """Why `restore` found a record corrupt, for the log."""
    try:
        snap = decode(value)
    except CorruptSnapshotError as exc:
        return str(exc)
    if _wrong_shape(table, snap):
        return (
            f"{len(snap.last_output)} outputs and {len(snap.state)} state floats, the model has "
            f"{table.n_outputs} and {sum(table.state_sizes)}"
        )
    return "not corrupt"


def _wrong_shape(table: StateTable, snap: Snapshot) -> bool:
    return len(snap.last_output) != table.n_outputs or len(snap.state) != sum(table.state_sizes)


def forget(table: StateTable, key: str) -> None:
    """Apply a tombstone: the key has no state and no pending end."""
    if key in table:
        table.release(key)
    table.ended.pop(key, None)


def _header(model_version: str, flags: int) -> bytes:
    version = model_version.encode("ascii")
    return _HEAD.pack(_MAGIC, flags, len(version)) + version


_EMPTY: Float32Array = np.zeros(0, np.float32)
