"""What the engine returns for a micro-batch: its outputs, column by column, its counts, and the
records it refused (for the dead-letter topic)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from consumer.codecs.inputs import InputRecord, Rejection
from consumer.codecs.outputs import FinalReason
from consumer.model.step import Float32Array

# Why a sequence ended: a final output's reason, or a reset (which has no output of its own).
EndReason = Literal[FinalReason, "reset"]


@dataclass(slots=True)
class Outputs:
    """The outputs of one batch, column by column, in input order per key."""

    keys: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    values: Float32Array = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    reasons: list[FinalReason | None] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    ts: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, rec: InputRecord, step: int, reason: FinalReason | None) -> None:
        """One output of `rec`, its values aside (filled from the model's results)."""
        self.keys.append(rec.key)
        self.steps.append(step)
        self.reasons.append(reason)
        self.partitions.append(rec.partition)
        self.offsets.append(rec.offset)
        self.ts.append(rec.ts)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A valid record the engine neither applied nor skipped: it goes to the dead-letter topic."""

    record: InputRecord
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class BatchResult:
    outputs: Outputs
    samples: int  # samples applied to the model
    waves: int
    skipped: int  # records not applied again: their offset is not newer than the key's state
    started: int  # sequences started
    ended: Counter[EndReason]  # sequences ended, by reason
    step_seconds: float  # time spent in waves: gather, model step, scatter
    rejected: tuple[Rejected, ...] = ()  # in input order
    slot_seconds: float = 0.0  # time spent finding the keys' slots, where measured apart


def merged(a: BatchResult, b: BatchResult) -> BatchResult:
    """Two results of disjoint sets of keys as one (outputs of `a` first)."""
    out = Outputs(
        keys=a.outputs.keys + b.outputs.keys,
        steps=a.outputs.steps + b.outputs.steps,
        values=np.concatenate([a.outputs.values, b.outputs.values]),
        reasons=a.outputs.reasons + b.outputs.reasons,
        partitions=a.outputs.partitions + b.outputs.partitions,
        offsets=a.outputs.offsets + b.outputs.offsets,
        ts=a.outputs.ts + b.outputs.ts,
    )
    return BatchResult(
        out,
        a.samples + b.samples,
        a.waves + b.waves,
        a.skipped + b.skipped,
        a.started + b.started,
        a.ended + b.ended,
        a.step_seconds + b.step_seconds,
        a.rejected + b.rejected,
        a.slot_seconds + b.slot_seconds,
    )
