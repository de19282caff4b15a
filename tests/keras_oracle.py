"""An oracle independent of the service's engine: Keras `model(x[None, :t], training=False)` on
every prefix of every sequence, with the sequence semantics taken from the input records as they
lie in the input topic (read in (partition, offset) order).

The semantics, from docs/design.md ("Wire format", "The engine"), written out here rather than
borrowed from the engine:
each sample of a sequence is one output with its step (1, 2, ...); `reset` drops the live
sequence before the record's samples; `end` makes the record's last output final with reason
`end`, and a bare end marker repeats the sequence's last output as that final; a sample whose step
reaches the `max_steps` in force (0: none) is final with reason `max_steps`, and the next sample
starts a new sequence; a record with `end` on no live sequence gives nothing. Optionally, every
sequence still open at the end of the input gets an `idle_timeout` final repeating its last output.

Cost: one model call per prefix length over every sequence that long (sequences sorted by length),
so a few thousand sequences cost as many calls as the longest sequence has samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consumer.codecs.inputs import InputRecord
from consumer.codecs.outputs import FinalReason, OutputRecord

Ident = tuple[str, int, int, int, bool]  # key, partition, offset, step, final
MaxSteps = Callable[[InputRecord], int]  # the max_steps in force when a record is processed
_CALL_ROWS = 8192  # sequences per model call, to bound memory


@dataclass
class _Sequence:
    key: str
    rows: list[list[float]] = field(default_factory=list)
    # (prefix length, partition, offset, step, reason, ts) per output
    outs: list[tuple[int, int, int, int, FinalReason | None, int | None]] = field(
        default_factory=list
    )


def sequences(
    records: Iterable[InputRecord], max_steps: MaxSteps | int = 0, idle_finals: bool = False
) -> list[_Sequence]:
    """Every sequence the records form, with the outputs it must produce (values not yet known)."""
    limit: MaxSteps = (lambda _rec: max_steps) if isinstance(max_steps, int) else max_steps
    live: dict[str, _Sequence] = {}
    done: list[_Sequence] = []
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        if rec.reset and rec.key in live:
            done.append(live.pop(rec.key))
        steps_limit = limit(rec)
        for row in rec.features:
            seq = live.get(rec.key)
            if seq is None:
                seq = live[rec.key] = _Sequence(rec.key)
            seq.rows.append(row)
            step = len(seq.rows)
            reason: FinalReason | None = None
            if steps_limit and step >= steps_limit:
                reason = "max_steps"
            seq.outs.append((step, rec.partition, rec.offset, step, reason, rec.ts))
            if reason is not None:
                done.append(live.pop(rec.key))
        seq = live.get(rec.key)
        if rec.end and seq is not None:
            last = seq.outs[-1]
            if rec.features and last[2] == rec.offset:
                seq.outs[-1] = (*last[:4], "end", last[5])
            else:  # a bare end marker: the last output again, final
                seq.outs.append((last[0], rec.partition, rec.offset, last[3], "end", rec.ts))
            done.append(live.pop(rec.key))
    for seq in live.values():
        if idle_finals:
            last = seq.outs[-1]
            seq.outs.append((last[0], last[1], last[2], last[3], "idle_timeout", None))
        done.append(seq)
    return done


def load_model(path: Path) -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras  # noqa: PLC0415  (heavy, only where the oracle runs)

    return keras.saving.load_model(path, compile=False)


def prefix_outputs(model: Any, seqs: list[_Sequence], n_features: int = 3) -> list[np.ndarray]:
    """Per sequence, the model's output for each prefix length (row t-1: prefix of t samples)."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i].rows))
    longest = len(seqs[order[0]].rows) if order else 0
    x = np.zeros((len(seqs), longest, n_features), np.float32)
    for rank, i in enumerate(order):
        rows = seqs[i].rows
        x[rank, : len(rows)] = np.asarray(rows, np.float32)
    lengths = np.asarray([len(seqs[i].rows) for i in order])
    values: list[np.ndarray | None] = [None] * len(seqs)
    per_rank: list[list[np.ndarray]] = [[] for _ in order]
    for t in range(1, longest + 1):
        count = int(np.count_nonzero(lengths >= t))  # sorted: the first `count` ranks
        for lo in range(0, count, _CALL_ROWS):
            hi = min(count, lo + _CALL_ROWS)
            y = np.asarray(model(x[lo:hi, :t], training=False), np.float32)
            for rank in range(lo, hi):
                per_rank[rank].append(y[rank - lo])
    for rank, i in enumerate(order):
        values[i] = np.stack(per_rank[rank]) if per_rank[rank] else np.zeros((0, 1), np.float32)
    return [v for v in values if v is not None]


def expected_outputs(
    model_path: Path,
    records: Iterable[InputRecord],
    *,
    max_steps: MaxSteps | int = 0,
    idle_finals: bool = False,
) -> dict[Ident, OutputRecord]:
    """Every output the service must write for these (good) input records, by identity."""
    seqs = [s for s in sequences(records, max_steps, idle_finals) if s.rows]
    if not seqs:
        return {}
    values = prefix_outputs(load_model(model_path), seqs)
    out: dict[Ident, OutputRecord] = {}
    for seq, y in zip(seqs, values, strict=True):
        for length, partition, offset, step, reason, ts in seq.outs:
            row = tuple(float(v) for v in y[length - 1])
            final = reason is not None
            out[(seq.key, partition, offset, step, final)] = OutputRecord(
                sequence_id=seq.key,
                step=step,
                probability=row[0] if len(row) == 1 else None,
                probabilities=row if len(row) > 1 else None,
                final=final,
                reason=reason,
                model_version="keras",
                partition=partition,
                offset=offset,
                ts=ts,
            )
    return out
