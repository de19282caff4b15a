"""One micro-batch of decoded records in, one output per sample out. Pure: no Kafka, no clock.

Records are applied in input order per key. A batched model call never holds two steps of the
same key: the i-th sample of every key in the batch forms wave i, and the waves run in order, each
gathering its keys' state rows from the table, stepping once and scattering them back.

Per record the work is a few dictionary and list operations; everything per sample (the model,
gathering, scattering, collecting outputs) is done by numpy over whole waves.

A key's sequence lives on one input partition. A record of the key on another partition (a
producer with another partitioner) is returned as a `wrong_partition` rejection: offsets of two
partitions cannot be compared, so it can be neither applied nor skipped as a replay.

Idleness is judged on record time (see `evict_idle`), so a worker's downtime or lag never splits
a sequence whose samples were produced within the idle timeout.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from consumer.codecs.input_batch import DecodedBatch
from consumer.codecs.inputs import InputRecord, wrong_partition
from consumer.codecs.outputs import FinalReason
from consumer.engine.fast_path import process_plain_records, process_samples
from consumer.engine.results import BatchResult, EndReason, Outputs, Rejected, merged
from consumer.engine.state_table import StateTable, replayed
from consumer.model.step import Float32Array, StepFunction

# Record times of a batch, in seconds: one per record, or one for all.
Times = float | Sequence[float] | npt.NDArray[np.float64]


class _Cursor:
    """Where one key stands while its records of the batch are laid out."""

    __slots__ = (
        "applied",
        "last_offset",
        "last_sample",
        "partition",
        "seen",
        "slot",
        "step",
        "wave",
    )

    def __init__(self, slot: int, step: int, last_offset: int, partition: int) -> None:
        self.slot = slot  # -1: the key has no slot yet
        self.step = step  # samples seen in the current sequence; 0: no live state
        self.wave = 0
        self.last_sample = -1  # index of the key's latest sample in this batch
        self.last_offset = last_offset
        self.partition = partition  # of the key's sequence; -1: none yet
        self.seen = -math.inf  # newest record time applied
        self.applied = False  # any record of the batch applied (not skipped as a replay)


@dataclass(slots=True)
class _Layout:
    """A micro-batch laid out for the model: each sample's row, slot and wave, the outputs to
    fill from the model's results, and where each key stands after the batch."""

    rows: list[list[float]] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)  # per sample
    waves: list[int] = field(default_factory=list)  # per sample
    fresh: list[int] = field(default_factory=list)  # samples that start a sequence: zeroed first
    out: Outputs = field(default_factory=Outputs)
    sources: list[int] = field(default_factory=list)  # per output: its sample, or -1 - j for the
    repeat_slots: list[int] = field(default_factory=list)  # j-th repeat of a stored output
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: int = 0
    started: int = 0
    ended: Counter[EndReason] = field(default_factory=Counter)


class Engine:
    def __init__(self, step_fn: StepFunction, table: StateTable, *, max_steps: int = 0) -> None:
        if max_steps < 0:
            raise ValueError("max_steps must be >= 0 (0: unlimited)")
        self.step_fn = step_fn
        self.table = table
        self.max_steps = max_steps

    def process(self, records: Sequence[InputRecord], times: Times) -> BatchResult:
        """Apply a micro-batch. `times` are the records' times (their Kafka timestamps, seconds):
        a key's last-seen time becomes that of its newest applied record, and each partition's
        stream time that of its newest record."""
        seen = record_times(times, len(records))
        parts = np.array([r.partition for r in records], np.int64)
        self.table.advance_stream_time(parts, seen)
        if self.max_steps:  # a sample may end its sequence: every record takes the general path
            return self._process_general(records, seen)
        simple, rest = process_plain_records(self.step_fn, self.table, records, parts, seen)
        if simple is None:
            return self._process_general(records, seen)
        if not rest:
            return simple
        general = self._process_general([records[i] for i in rest], seen[rest])
        return merged(simple, general)

    def process_batch(self, batch: DecodedBatch) -> BatchResult:
        """`process` for a batch decoded by `decode_batch`: its plain samples stay columns."""
        samples = batch.samples
        if self.max_steps or not len(samples):
            return self.process(*batch.in_order())
        self.table.advance_stream_time(samples.partitions, samples.times)
        others = {r.key for r in batch.records}
        simple, rest = process_samples(self.step_fn, self.table, samples, others)
        if not rest and not batch.records:
            assert simple is not None
            return simple
        general = self.process(*batch.objects(rest))
        return general if simple is None else merged(simple, general)

    def _process_general(
        self, records: Sequence[InputRecord], seen: npt.NDArray[np.float64]
    ) -> BatchResult:
        layout = _Layout()
        for rec, t in zip(records, seen.tolist(), strict=True):
            self._lay_out(layout, rec, t)
        return self._apply(layout)

    # -- laying a batch out, record by record --------------------------------------------------

    def _lay_out(self, layout: _Layout, rec: InputRecord, t: float) -> None:
        """Place one record: its samples in waves after the key's earlier ones, its outputs, and
        what it does to the key's sequence (start, reset, end)."""
        cur = self._cursor(layout.cursors, rec.key)
        if cur.partition >= 0 and rec.partition != cur.partition:
            layout.rejected.append(Rejected(rec, wrong_partition(rec, cur.partition)))
            return
        if replayed(rec.offset, cur.last_offset):
            layout.skipped += 1
            return
        n = len(rec.features)
        if not n and not cur.step:
            return  # nothing to end: the state does not move to this offset, in any batching
        cur.last_offset = rec.offset
        cur.applied = True
        cur.seen = max(cur.seen, t)
        if rec.reset and cur.step:
            cur.step = 0
            layout.ended["reset"] += 1
        if n:
            self._lay_out_samples(layout, cur, rec)
        if rec.end and cur.step:
            if n:
                layout.out.reasons[-1] = "end"
            else:  # a bare end marker repeats the sequence's last output
                if cur.last_sample >= 0:
                    layout.sources.append(cur.last_sample)
                else:
                    layout.sources.append(-1 - len(layout.repeat_slots))
                    layout.repeat_slots.append(cur.slot)
                layout.out.add(rec, cur.step, "end")
            layout.ended["end"] += 1
            cur.step = 0

    def _cursor(self, cursors: dict[str, _Cursor], key: str) -> _Cursor:
        cur = cursors.get(key)
        if cur is not None:
            return cur
        table = self.table
        slot = table.slot_of(key)
        if slot is not None:
            cur = _Cursor(
                slot,
                int(table.steps[slot]),
                int(table.last_offset[slot]),
                int(table.partition[slot]),
            )
            cur.seen = float(table.last_seen[slot])
        elif (gone := table.ended.get(key)) is not None:
            cur = _Cursor(-1, 0, gone.offset, gone.partition)
        else:
            cur = _Cursor(-1, 0, -1, -1)
        cursors[key] = cur
        return cur

    def _lay_out_samples(self, layout: _Layout, cur: _Cursor, rec: InputRecord) -> None:
        """A record's samples, one wave each, cut where `max_steps` ends the sequence."""
        max_steps = self.max_steps
        n = len(rec.features)
        if cur.slot < 0:
            cur.slot = self.table.allocate(rec.key, rec.partition)
            cur.partition = rec.partition
        layout.rows.extend(rec.features)
        out = layout.out
        done = 0
        while done < n:
            take = n - done
            if max_steps:
                # At least one: a sequence restored at or past a lowered limit ends on its next
                # sample.
                take = max(1, min(take, max_steps - cur.step))
            first = len(layout.slots)
            if cur.step == 0:
                layout.fresh.append(first)
                layout.started += 1
            layout.slots.extend([cur.slot] * take)
            layout.waves.extend(range(cur.wave, cur.wave + take))
            layout.sources.extend(range(first, first + take))
            out.steps.extend(range(cur.step + 1, cur.step + take + 1))
            out.reasons.extend([None] * take)
            cur.step += take
            cur.wave += take
            done += take
            if max_steps and cur.step >= max_steps:
                out.reasons[-1] = "max_steps"
                layout.ended["max_steps"] += 1
                cur.step = 0
        cur.last_sample = len(layout.slots) - 1
        out.keys.extend([rec.key] * n)
        out.partitions.extend([rec.partition] * n)
        out.offsets.extend([rec.offset] * n)
        out.ts.extend([rec.ts] * n)

    # -- applying it: the model over every wave, then each key's bookkeeping -------------------

    def _apply(self, layout: _Layout) -> BatchResult:
        table = self.table
        out = layout.out
        n_samples = len(layout.slots)
        repeat_slots = layout.repeat_slots
        repeated = table.last_output[repeat_slots] if repeat_slots else None
        t0 = time.perf_counter()
        y, n_waves = self._run_waves(layout.rows, layout.slots, layout.waves, layout.fresh)
        step_seconds = time.perf_counter() - t0
        if repeated is not None:
            y = np.concatenate([y, repeated])
        src = np.asarray(layout.sources, np.intp)
        if repeat_slots:
            neg = src < 0
            src[neg] = n_samples - 1 - src[neg]
        out.values = y[src] if len(src) else np.zeros((0, self.step_fn.n_outputs), np.float32)
        for key, cur in layout.cursors.items():
            if cur.slot < 0 or not cur.applied:
                continue
            if cur.step == 0:
                table.end(key, cur.last_offset)
                continue
            last_output = y[cur.last_sample] if cur.last_sample >= 0 else None
            table.record_progress(
                key,
                cur.slot,
                step=cur.step,
                last_offset=cur.last_offset,
                seen=cur.seen,
                last_output=last_output,
            )
        return BatchResult(
            out,
            n_samples,
            n_waves,
            layout.skipped,
            layout.started,
            layout.ended,
            step_seconds,
            tuple(layout.rejected),
        )

    def evict_idle(self, timeout_s: float, *, caught_up: Iterable[int], now: float) -> BatchResult:
        """End, with a final output each, the sequences last seen more than `timeout_s` before
        their partition's stream time. Only the partitions in `caught_up` (read to their end)
        evict: on a partition with lag the keys' next samples may wait in the backlog. A caught-up
        partition's stream time follows the wall clock `now` (or its newest record time, when a
        producer's clock is ahead of ours), so the keys of a quiet partition still end."""
        table = self.table
        clock = table.stream_time
        slots = table.idle_slots({p: max(now, clock.get(p, now)) - timeout_s for p in caught_up})
        return self.end_slots(slots, "idle_timeout")

    def end_all(self, reason: FinalReason) -> BatchResult:
        """End every live sequence with a final output each (a model rollout's `restart`)."""
        table = self.table
        return self.end_slots(np.flatnonzero(table.in_use).astype(np.intp), reason)

    def end_slots(self, slots: npt.NDArray[np.intp], reason: FinalReason) -> BatchResult:
        """End these slots' sequences, each with a final output repeating its last one."""
        table = self.table
        out = Outputs(
            steps=table.steps[slots].tolist(),
            values=table.last_output[slots].copy(),
            partitions=table.partition[slots].tolist(),
            offsets=table.last_offset[slots].tolist(),
        )
        for slot, offset in zip(slots.tolist(), out.offsets, strict=True):
            key = table.key_of(slot)
            assert key is not None
            out.keys.append(key)
            table.end(key, offset)
        out.reasons = [reason] * len(out.keys)
        out.ts = [None] * len(out.keys)
        ended: Counter[EndReason] = Counter({reason: len(out.keys)} if len(out.keys) else {})
        return BatchResult(out, 0, 0, 0, 0, ended, 0.0)

    def _run_waves(
        self, rows: list[list[float]], s_slot: list[int], s_wave: list[int], fresh: list[int]
    ) -> tuple[Float32Array, int]:
        n = len(s_slot)
        n_out = self.step_fn.n_outputs
        if n == 0:
            return np.zeros((0, n_out), np.float32), 0
        x = np.asarray(rows, np.float32)
        slots = np.asarray(s_slot, np.intp)
        fresh_mask = np.zeros(n, np.bool_)
        fresh_mask[fresh] = True
        waves = np.asarray(s_wave, np.intp)
        n_waves = int(waves.max()) + 1
        y = np.empty((n, n_out), np.float32)
        if n_waves == 1:
            self._wave(x, slots, fresh_mask, y, None)
            return y, 1
        order = np.argsort(waves, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(waves))])
        for w in range(n_waves):
            idx = order[bounds[w] : bounds[w + 1]]
            self._wave(x[idx], slots[idx], fresh_mask[idx], y, idx)
        return y, n_waves

    def _wave(
        self,
        x: Float32Array,
        slots: npt.NDArray[np.intp],
        fresh: npt.NDArray[np.bool_],
        y: Float32Array,
        idx: npt.NDArray[np.intp] | None,
    ) -> None:
        states = self.table.gather_states(slots)
        if fresh.any():
            for s in states:
                s[fresh] = 0.0
        result = self.step_fn.step(x, states)
        if idx is None:
            y[...] = result
        else:
            y[idx] = result
        self.table.scatter_states(slots, states)


def record_times(times: Times, n: int) -> npt.NDArray[np.float64]:
    if isinstance(times, int | float):
        return np.full(n, float(times))
    seen = np.asarray(times, np.float64)
    if seen.shape != (n,):
        raise ValueError(f"{len(seen)} record times for {n} records")
    return seen
