"""Shadow scoring: a candidate model scores every sample too, with state of its own, and writes
its outputs to a topic of their own in the output format. Nothing it does touches the live
outputs, the live state or the changelog.

Its state lives in memory only. After a restart or a rebalance the shadow sequences of the keys
that moved start over at step 1 while the live ones go on, so a shadow output is compared with a
live one only where both are the same step of the same record: the comparison never mixes a
fresh shadow sequence with a long live one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumer.codecs.inputs import InputRecord
from consumer.engine.results import BatchResult
from consumer.engine.scoring import Engine, Times
from consumer.engine.state_table import StateTable
from consumer.engine.versions import Results
from consumer.model.step import StepFunction


@dataclass(frozen=True, slots=True)
class Agreement:
    """Live outputs of one version against the shadow's, over one batch (first output unit)."""

    compared: int
    abs_difference: float  # summed over the compared outputs
    agreeing: int  # both on the same side of 0.5


class ShadowScoring:
    def __init__(self, step_fn: StepFunction, topic: str, *, max_steps: int = 0) -> None:
        table = StateTable(step_fn.state_sizes, step_fn.n_outputs)
        self.engine = Engine(step_fn, table, max_steps=max_steps)
        self.topic = topic

    @property
    def version(self) -> str:
        return self.engine.step_fn.version

    def process(self, records: Sequence[InputRecord], times: Times) -> BatchResult:
        return self.engine.process(records, times)

    def evict_idle(self, timeout_s: float, *, caught_up: Sequence[int], now: float) -> BatchResult:
        return self.engine.evict_idle(timeout_s, caught_up=caught_up, now=now)

    def drop_partitions(self, partitions: Sequence[int]) -> None:
        self.engine.table.drop_partitions(partitions)
        self.engine.table.take_changes()  # nothing of the shadow goes to the changelog

    def compare(self, live: Results, shadow: BatchResult) -> dict[str, Agreement]:
        """Per live version, how its outputs of the batch compare with the shadow's."""
        out = shadow.outputs
        index = {
            (key, offset, step, reason is not None): j
            for j, (key, offset, step, reason) in enumerate(
                zip(out.keys, out.offsets, out.steps, out.reasons, strict=True)
            )
        }
        found: dict[str, Agreement] = {}
        for version, result in live:
            o = result.outputs
            pairs = [
                (i, j)
                for i, ident in enumerate(
                    zip(o.keys, o.offsets, o.steps, (r is not None for r in o.reasons), strict=True)
                )
                if (j := index.get(ident)) is not None
            ]
            if not pairs:
                continue
            mine, theirs = (np.asarray(side, np.intp) for side in zip(*pairs, strict=True))
            a, b = o.values[mine, 0], out.values[theirs, 0]
            agreeing = int(np.count_nonzero((a >= 0.5) == (b >= 0.5)))
            before = found.get(version, Agreement(0, 0.0, 0))
            found[version] = Agreement(
                before.compared + len(pairs),
                before.abs_difference + float(np.abs(a - b).sum()),
                before.agreeing + agreeing,
            )
        return found
