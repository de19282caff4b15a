"""The common records of a micro-batch, done with whole-batch numpy: one sample, no flags, not a
replay, a key whose other records in the batch are like it. A key met k times takes waves 1..k;
the per-key bookkeeping of the general path (cursors, finals) reduces to array operations over
columns (`Samples`), with one dictionary lookup per key as the only per-record Python. The other
records take the general path in `consumer.engine.scoring`; the tests hold both to one reference.
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
from consumer.model.step import Float32Array, StepFunction

# Up to this many repeated keys in a batch, their waves are counted in a Python loop: cheaper
# than the whole-array way for the usual batch of a few hundred keys among many.
_FEW_REPEATS = 8


def process_plain_records(
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
    """Apply the samples whose keys are not among `others` (the keys of the batch's other
    records), none of them a replay, each key's on its sequence's partition with rising offsets.
    A key met k times takes waves 1..k. Return the indices of the samples left for the general
    path, in order. Keys are independent, so splitting a batch by key changes nothing but the
    order of outputs across keys."""
    n = len(samples)
    keys = samples.keys
    started = time.perf_counter()
    slots = table.slots_of(keys)
    slot_seconds = time.perf_counter() - started
    eligible = np.ones(n, np.bool_)
    if others:
        eligible &= np.fromiter((k not in others for k in keys), np.bool_, n)
    new = slots < 0
    if table.ended and np.count_nonzero(new):
        for i in np.flatnonzero(new & eligible).tolist():
            gone = table.ended.get(keys[i])
            if gone is not None and (
                replayed(int(samples.offsets[i]), gone.offset)
                or int(samples.partitions[i]) != gone.partition
            ):
                eligible[i] = False  # a replay or a stray of an ended sequence: the general path
    # count_nonzero, not any() or all(): a third of the cost on a batch's columns
    if not others and not np.count_nonzero(new):  # the common batch: every key known, alone
        aside = np.asarray(replayed(samples.offsets, table.last_offset[slots]), np.bool_)
        aside |= samples.partitions != table.partition[slots]
        if np.count_nonzero(aside):
            eligible[aside] = False  # rare: after a crash, or a stray
    else:
        known = np.flatnonzero(~new & eligible)
        if len(known):
            at = slots[known]
            aside = np.asarray(replayed(samples.offsets[known], table.last_offset[at]), np.bool_)
            aside |= samples.partitions[known] != table.partition[at]
            eligible[known[aside]] = False
    ranks = None
    if len(set(keys)) != n:
        ranks = _ranks(keys, slots, samples, eligible)
    if np.count_nonzero(eligible) == n:
        return _apply(step_fn, table, samples, slots, ranks=ranks, slot_seconds=slot_seconds), []
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
    taken = None if ranks is None else ranks[picked]
    return _apply(
        step_fn, table, chosen, slots[picked], ranks=taken, slot_seconds=slot_seconds
    ), rest


def _ranks(
    keys: list[str],
    slots: npt.NDArray[np.intp],
    samples: Samples,
    eligible: npt.NDArray[np.bool_],
) -> npt.NDArray[np.intp]:
    """Each sample's place among its key's samples in the batch (0 for the first): its wave.
    A key with any sample not eligible, or whose samples change partition or do not rise in
    offset, is made not eligible as a whole (in place): the general path decides."""
    n = len(keys)
    group = slots
    new = np.flatnonzero(slots < 0)
    if len(new):  # keys without a slot yet: a temporary negative id each
        group = slots.copy()
        ids: dict[str, int] = {}
        for i in new.tolist():
            group[i] = -2 - ids.setdefault(keys[i], len(ids))
    order = np.argsort(group, kind="stable")  # stable: a key's samples stay in batch order
    g = group[order]
    follows = np.flatnonzero(g[1:] == g[:-1])  # sorted places whose key is the one before's
    later, earlier = order[follows + 1], order[follows]
    offsets, parts = samples.offsets, samples.partitions
    broken = (offsets[later] <= offsets[earlier]) | (parts[later] != parts[earlier])
    if np.count_nonzero(broken) or np.count_nonzero(eligible) < n:  # rare: set operations then
        eligible &= ~np.isin(group, np.union1d(group[later[broken]], group[~eligible]))
    ranks = np.zeros(n, np.intp)
    if len(follows) <= _FEW_REPEATS:  # the usual batch: a repeat or two, one Python step each
        for first, then in zip(earlier.tolist(), later.tolist(), strict=True):
            ranks[then] = ranks[first] + 1
        return ranks
    place = np.arange(n)
    start = place.copy()
    start[follows + 1] = 0
    np.maximum.accumulate(start, out=start)  # each sorted place's run start
    ranks[order] = place - start
    return ranks


def _apply(
    step_fn: StepFunction,
    table: StateTable,
    samples: Samples,
    slots: npt.NDArray[np.intp],
    *,
    ranks: npt.NDArray[np.intp] | None,
    slot_seconds: float,
) -> BatchResult:
    n = len(samples)
    keys = samples.keys
    fresh = np.flatnonzero(slots < 0)
    started_sequences = 0
    if len(fresh):
        started = time.perf_counter()
        slots = slots.copy()
        # A key's later samples take the slot its first took (its samples share a partition).
        first: dict[str, int] = {}
        for i in fresh.tolist():
            first.setdefault(keys[i], i)
        names = list(first)
        at = np.fromiter(first.values(), np.intp, len(first))
        new_slots = table.allocate_many(names, samples.partitions[at].astype(np.int32))
        given = dict(zip(names, new_slots.tolist(), strict=True))
        slots[fresh] = [given[keys[i]] for i in fresh.tolist()]
        started_sequences = len(names)
        slot_seconds += time.perf_counter() - started

    waves = 1 if ranks is None or not n else int(ranks.max()) + 1
    step_seconds = 0.0
    if waves == 1:
        step_seconds, y = _wave(step_fn, table, slots, samples.features)
        steps = table.record_one_step(slots, samples.offsets, samples.times, y)
    else:
        assert ranks is not None
        y = np.empty((n, step_fn.n_outputs), np.float32)
        steps = np.empty(n, np.int32)
        for wave in range(waves):
            at = np.flatnonzero(ranks == wave)
            seconds, y[at] = _wave(step_fn, table, slots[at], samples.features[at])
            step_seconds += seconds
            steps[at] = table.record_one_step(
                slots[at],
                samples.offsets[at],
                samples.times[at],
                y[at],
            )
    out = Outputs(
        keys=keys,
        steps=steps.tolist(),
        values=y,
        reasons=[None] * n,
        partitions=samples.partitions.tolist(),
        offsets=samples.offsets.tolist(),
        ts=samples.ts,
    )
    return BatchResult(
        out, n, waves, 0, started_sequences, Counter(), step_seconds, slot_seconds=slot_seconds
    )


def _wave(
    step_fn: StepFunction, table: StateTable, slots: npt.NDArray[np.intp], x: Float32Array
) -> tuple[float, Float32Array]:
    """One model step of distinct slots: gather, step, scatter; its time and outputs."""
    started = time.perf_counter()
    states = table.gather_states(slots)
    y = step_fn.step(x, states).copy()
    table.scatter_states(slots, states)
    return time.perf_counter() - started, y


def _complement(indices: list[int], n: int) -> list[int]:
    mask = np.ones(n, np.bool_)
    mask[indices] = False
    return np.flatnonzero(mask).tolist()
