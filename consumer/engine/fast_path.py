"""The common records of a micro-batch, done with whole-batch numpy: one sample, no flags, a key
that appears once in the batch. Together they form a single wave, so the per-key bookkeeping of
the general path (cursors, waves, finals) reduces to array operations over columns (`Samples`),
with one dictionary lookup per key as the only per-record Python. The other records take the
general path in `consumer.engine.scoring`; the tests hold both to one reference.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from consumer.codecs.input_batch import Samples
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
    """`process_samples` for records given as objects (`parts`, `seen`: their partitions and
    record times); return the indices of the records left for the general path, in order."""
    single = [
        i for i, r in enumerate(records) if len(r.features) == 1 and not r.end and not r.reset
    ]
    if not single:
        return None, list(range(len(records)))
    others = {records[i].key for i in _complement(single, len(records))}
    chosen = [records[i] for i in single]
    at = np.asarray(single, np.intp)
    samples = Samples(
        [r.key for r in chosen],
        np.asarray([r.features[0] for r in chosen], np.float32),
        parts[at],
        np.fromiter((r.offset for r in chosen), np.int64, len(chosen)),
        [r.ts for r in chosen],
        seen[at],
        at,
    )
    result, rest = process_samples(step_fn, table, samples, others)
    left = sorted([*_complement(single, len(records)), *(single[j] for j in rest)])
    return result, left


def process_samples(
    step_fn: StepFunction, table: StateTable, samples: Samples, others: set[str]
) -> tuple[BatchResult | None, list[int]]:
    """Apply the samples that form one wave on their own: a key met once among them and not
    among `others` (the keys of the batch's other records), not a replay, on its sequence's
    partition. Return the indices of the samples left for the general path, in order. Keys are
    independent, so splitting a batch by key changes nothing but the order of outputs across
    keys."""
    n = len(samples)
    keys = samples.keys
    started = time.perf_counter()
    slots = table.slots_of(keys)
    slot_seconds = time.perf_counter() - started
    eligible = np.ones(n, np.bool_)
    if others or len(set(keys)) != n:
        counts = Counter(keys)
        eligible &= np.fromiter((counts[k] == 1 and k not in others for k in keys), np.bool_, n)
    new = slots < 0
    if table.ended and new.any():
        for i in np.flatnonzero(new & eligible).tolist():
            gone = table.ended.get(keys[i])
            if gone is not None and (
                replayed(int(samples.offsets[i]), gone.offset)
                or int(samples.partitions[i]) != gone.partition
            ):
                eligible[i] = False  # a replay or a stray of an ended sequence: the general path
    known = np.flatnonzero(~new & eligible)
    if len(known):
        at = slots[known]
        aside = np.asarray(replayed(samples.offsets[known], table.last_offset[at]), np.bool_)
        aside |= samples.partitions[known] != table.partition[at]
        eligible[known[aside]] = False  # rare: after a crash, or a stray
    if eligible.all():
        return _apply(step_fn, table, samples, slots, slot_seconds), []
    picked = np.flatnonzero(eligible)
    rest: list[int] = np.flatnonzero(~eligible).tolist()
    if not len(picked):
        return None, rest
    chosen = Samples(
        [keys[i] for i in picked.tolist()],
        samples.features[picked],
        samples.partitions[picked],
        samples.offsets[picked],
        [samples.ts[i] for i in picked.tolist()],
        samples.times[picked],
        samples.positions[picked],
    )
    return _apply(step_fn, table, chosen, slots[picked], slot_seconds), rest


def _apply(
    step_fn: StepFunction,
    table: StateTable,
    samples: Samples,
    slots: npt.NDArray[np.intp],
    slot_seconds: float,
) -> BatchResult:
    n = len(samples)
    keys = samples.keys
    fresh = np.flatnonzero(slots < 0).tolist()
    if fresh:
        started = time.perf_counter()
        slots = slots.copy()
        parts = samples.partitions
        for i in fresh:
            slots[i] = table.allocate(keys[i], int(parts[i]))
        slot_seconds += time.perf_counter() - started

    started = time.perf_counter()
    states = table.gather_states(slots)
    y = step_fn.step(samples.features, states).copy()
    table.scatter_states(slots, states)
    step_seconds = time.perf_counter() - started

    steps = table.record_one_step(keys, slots, samples.offsets, samples.times, y)
    out = Outputs(
        keys=keys,
        steps=steps.tolist(),
        values=y,
        reasons=[None] * n,
        partitions=samples.partitions.tolist(),
        offsets=samples.offsets.tolist(),
        ts=samples.ts,
    )
    return BatchResult(out, n, 1, 0, len(fresh), Counter(), step_seconds, slot_seconds=slot_seconds)


def _complement(indices: list[int], n: int) -> list[int]:
    mask = np.ones(n, np.bool_)
    mask[indices] = False
    return np.flatnonzero(mask).tolist()
