"""The stream semantics of docs/design.md, one record at a time, one key at a time, and random
streams that exercise them. Tests compare the batched engine with this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from consumer.codecs.input_batch import DecodedBatch, decode_batch
from consumer.codecs.inputs import InputRecord, encode_input


@dataclass(frozen=True)
class Expected:
    key: str
    step: int
    prefix: tuple[tuple[float, ...], ...]  # the samples of the sequence so far
    reason: str | None
    offset: int


@dataclass
class Reference:
    outputs: list[Expected] = field(default_factory=list)
    live: set[str] = field(default_factory=set)  # keys left with state
    skipped: int = 0  # replays: offset not newer than the key's last applied record
    rejected: list[InputRecord] = field(default_factory=list)  # wrong_partition, in input order


def reference(records: list[InputRecord], max_steps: int = 0) -> tuple[list[Expected], set[str]]:
    """Every output the records must produce, and the keys left with state."""
    ref = reference_run(records, max_steps)
    return ref.outputs, ref.live


def reference_run(records: list[InputRecord], max_steps: int | Sequence[int] = 0) -> Reference:
    """The semantics record by record; `max_steps` may give the limit in force at each record
    (a limit changed across a restart)."""
    limits = [max_steps] * len(records) if isinstance(max_steps, int) else list(max_steps)
    prefixes: dict[str, list[tuple[float, ...]]] = {}
    home: dict[str, int] = {}  # the partition of a key's sequence, once the key has had samples
    last: dict[str, int] = {}  # the offset of the key's last applied record
    ref = Reference()
    out = ref.outputs
    for rec, limit in zip(records, limits, strict=True):
        if home.get(rec.key, rec.partition) != rec.partition:
            ref.rejected.append(rec)
            continue
        if rec.offset <= last.get(rec.key, -1):
            ref.skipped += 1
            continue
        prefix = prefixes.setdefault(rec.key, [])
        if not rec.features and not prefix:
            continue  # nothing to end: the key's state does not move to this offset
        home.setdefault(rec.key, rec.partition)
        last[rec.key] = rec.offset
        if rec.reset:
            prefix.clear()
        for row in rec.features:
            prefix.append(tuple(row))
            # `>=`: a sequence restored with more steps than a lowered limit ends at once.
            reason = "max_steps" if limit and len(prefix) >= limit else None
            out.append(Expected(rec.key, len(prefix), tuple(prefix), reason, rec.offset))
            if reason:
                prefix.clear()
        if rec.end and prefix:
            if rec.features:
                last_out = out[-1]
                out[-1] = Expected(
                    last_out.key, last_out.step, last_out.prefix, "end", last_out.offset
                )
            else:
                out.append(Expected(rec.key, len(prefix), tuple(prefix), "end", rec.offset))
            prefix.clear()
    ref.live = {k for k, p in prefixes.items() if p}
    return ref


def record(
    key: str,
    offset: int,
    features: list[list[float]],
    *,
    end: bool = False,
    reset: bool = False,
    partition: int = 0,
) -> InputRecord:
    return InputRecord(key, features, end, reset, None, partition, offset)


@st.composite
def streams(
    draw: st.DrawFn,
    *,
    n_features: int = 3,
    values: st.SearchStrategy[float] | None = None,
    keys: int = 8,
    max_records: int = 60,
    min_records: int = 1,
    partitions: int = 1,
    replays: bool = False,
    strays: bool = False,
) -> list[InputRecord]:
    """Interleaved records of a few keys: chunks, single samples, end markers, resets.

    Each key lives on one of `partitions` partitions, whose offsets count up on their own. With
    `replays`, a partition is sometimes read again from an earlier offset (as after a crash or a
    rewind): its records come again, same offsets, same content. With `strays`, a few records of
    a key arrive on another partition (a producer with another partitioner)."""
    # Small integers by default: float32 sums of them are exact.
    value = values if values is not None else st.integers(-5, 5).map(float)
    row = st.lists(value, min_size=n_features, max_size=n_features)
    spec = st.tuples(
        st.integers(0, keys - 1),
        st.lists(row, min_size=0, max_size=4),
        st.booleans(),
        st.integers(0, 9).map(lambda v: v == 0),
        st.integers(0, 5).map(lambda v: strays and v == 0),
        st.integers(0, 9).map(lambda v: replays and v == 0),
        st.integers(1, 8),
    )
    homes = draw(st.lists(st.integers(0, partitions - 1), min_size=keys, max_size=keys))
    next_offset = [0] * partitions
    read: list[list[InputRecord]] = [[] for _ in range(partitions)]  # per partition, first reads
    records: list[InputRecord] = []
    for key, rows, end, reset, stray, rewind, depth in draw(
        st.lists(spec, min_size=min_records, max_size=max_records)
    ):
        p = homes[key]
        if stray and partitions > 1:
            p = (p + 1) % partitions
        if rewind and read[p]:
            records.extend(read[p][-depth:])
        samples = rows if rows or end else [[1.0] * n_features]
        rec = record(f"k{key}", next_offset[p], samples, end=end, reset=reset, partition=p)
        next_offset[p] += 1
        read[p].append(rec)
        records.append(rec)
    return records


def decoded_batch(
    records: Sequence[InputRecord], times: npt.NDArray[np.float64], n_features: int
) -> DecodedBatch:
    """The records as a consumer would read them (encoded by a producer), decoded by the
    service's batch decoder: plain samples as columns, the others as objects."""
    values = [
        encode_input(
            features=(r.features[0] if len(r.features) == 1 and not r.end else r.features) or None,
            end=r.end,
            reset=r.reset,
            ts=r.ts,
        )
        for r in records
    ]
    return decode_batch(
        [r.key.encode() for r in records],
        values,
        [r.partition for r in records],
        [r.offset for r in records],
        times,
        n_features=n_features,
        max_value_bytes=1 << 20,
    )
