"""The common records of a micro-batch, done with whole-batch numpy: one sample, no flags, a key
that appears once in the batch. Together they form a single wave, so the per-key bookkeeping of
the general path (cursors, waves, finals) reduces to a few list comprehensions and array
operations, several times cheaper per record. The other records take the general path in
`consumer.engine.scoring`; the tests hold both to one reference.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from consumer.codecs.inputs import InputRecord
from consumer.engine.results import BatchResult, Outputs
from consumer.engine.state_table import StateTable, replayed
from consumer.model.step import StepFunction


def process_single_wave(
    step_fn: StepFunction,
    table: StateTable,
    records: Sequence[InputRecord],
    parts: npt.NDArray[np.int64],
    seen: npt.NDArray[np.float64],
) -> tuple[BatchResult | None, list[int]]:
    """Apply the records that form one wave on their own (`parts`, `seen`: their partitions and
    record times); return the indices of the others, in order, for the general path. Keys are
    independent, so splitting a batch by key changes nothing but the order of outputs across
    keys."""
    keys = [r.key for r in records]
    counts = Counter(keys)
    slot_of = table.slot_of
    picked: list[int] = []
    slots: list[int | None] = []
    for i, r in enumerate(records):
        if counts[r.key] == 1 and len(r.features) == 1 and not r.end and not r.reset:
            slot = slot_of(r.key)
            if slot is None:
                gone = table.ended.get(r.key)
                if gone is not None and (
                    replayed(r.offset, gone.offset) or r.partition != gone.partition
                ):
                    continue  # a replay or a stray of an ended sequence: the general path decides
            picked.append(i)
            slots.append(slot)
    if not picked:
        return None, list(range(len(records)))
    n = len(picked)
    chosen = [records[i] for i in picked]
    offsets = np.fromiter((r.offset for r in chosen), np.int64, n)
    known = [j for j, s in enumerate(slots) if s is not None]
    if known:
        at = np.asarray(known, np.intp)
        index_known = np.fromiter((slots[j] for j in known), np.intp, len(known))
        aside = np.asarray(replayed(offsets[at], table.last_offset[index_known]), np.bool_)
        aside |= parts[np.asarray(picked, np.intp)[at]] != table.partition[index_known]
        if aside.any():  # rare: after a crash, or a stray; leave those to the general path
            drop = {known[j] for j in np.flatnonzero(aside).tolist()}
            keep = [j for j in range(n) if j not in drop]
            picked = [picked[j] for j in keep]
            chosen = [chosen[j] for j in keep]
            slots = [slots[j] for j in keep]
            offsets = offsets[keep]
            n = len(picked)
            if not n:
                return None, list(range(len(records)))
    rest_mask = np.ones(len(records), np.bool_)
    rest_mask[picked] = False
    rest: list[int] = np.flatnonzero(rest_mask).tolist()
    result = _apply(step_fn, table, chosen, slots, offsets=offsets, seen=seen[~rest_mask])
    return result, rest


def _apply(
    step_fn: StepFunction,
    table: StateTable,
    records: list[InputRecord],
    slots: list[int | None],
    *,
    offsets: npt.NDArray[np.int64],
    seen: npt.NDArray[np.float64],
) -> BatchResult:
    n = len(records)
    keys = [r.key for r in records]
    started_sequences = 0
    resolved: list[int] = []
    for key, slot, r in zip(keys, slots, records, strict=True):
        if slot is None:
            resolved.append(table.allocate(key, r.partition))
            started_sequences += 1
        else:
            resolved.append(slot)
    index = np.asarray(resolved, np.intp)
    x = np.asarray([r.features[0] for r in records], np.float32)

    started = time.perf_counter()
    states = table.gather_states(index)
    y = step_fn.step(x, states).copy()
    table.scatter_states(index, states)
    step_seconds = time.perf_counter() - started

    steps = table.record_one_step(keys, index, offsets, seen, y)
    out = Outputs(
        keys=keys,
        steps=steps.tolist(),
        values=y,
        reasons=[None] * n,
        partitions=[r.partition for r in records],
        offsets=offsets.tolist(),
        ts=[r.ts for r in records],
    )
    return BatchResult(out, n, 1, 0, started_sequences, Counter(), step_seconds)
