"""The evaluation's computations, without Kafka: outputs joined with the labels, scores by the
number of steps seen, latency percentiles.

Outputs are joined by sequence id. An output repeated by at-least-once redelivery (same key,
input position, step and finality) is counted once; its first copy gives the latency. A final
record repeating the last step (a bare end marker, an idle eviction) adds no step. A sequence is
complete once it has a probability at its labelled length; the "final step" scores use complete
sequences, each at its last step, except those the end of the simulator's run cut short (their
last step is not their end). At step s the scores cover every sequence with a probability at
step s, cut short or not: sequences shorter than s drop out, so counts fall with s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from consumer.codecs.outputs import OutputRecord
from consumer.training.scoring_metrics import accuracy, roc_auc
from consumer.training.synthetic import TRAINED_LENGTH
from producer_sim.labels import SequenceLabel

THRESHOLD = 0.5
PERCENTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class StepScore:
    step: int  # 0 for "each sequence at its final step"
    count: int
    positives: int
    roc_auc: float | None  # None when one class is missing
    accuracy: float | None  # None when count is 0


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class Trajectory:
    key: str
    label: int
    probabilities: tuple[float, ...]  # at steps 1, 2, ...


@dataclass(frozen=True)
class Evaluation:
    labelled: int
    complete: int  # sequences with a probability at their labelled length
    cut_short: int  # labelled sequences the end of the run interrupted
    outputs: int  # output records of labelled sequences, repeats included
    repeats: int
    unlabelled_outputs: int  # outputs of keys not in the labels (other runs, other producers)
    model_versions: tuple[str, ...]
    by_step: tuple[StepScore, ...]
    final: StepScore
    latency: Latency
    trajectories: tuple[Trajectory, ...]
    final_probabilities: tuple[tuple[float, ...], tuple[float, ...]]  # (negatives, positives)
    latencies_ms: tuple[float, ...]

    @property
    def all_complete(self) -> bool:
        return self.complete == self.labelled


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The q-th percentile by the nearest-rank method: the smallest value with at least q% of
    the values at or below it. `values` must be sorted and non-empty."""
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return values[rank - 1]


def latency_summary(values_ms: Iterable[float]) -> Latency:
    ordered = sorted(values_ms)
    if not ordered:
        return Latency(0, None, None, None, None)
    p50, p95, p99 = (nearest_rank(ordered, q) for q in PERCENTILES)
    return Latency(len(ordered), p50, p95, p99, ordered[-1])


def score(labels: Sequence[int], probabilities: Sequence[float], step: int) -> StepScore:
    n, positives = len(labels), int(sum(labels))
    if n == 0:
        return StepScore(step, 0, 0, None, None)
    auc = roc_auc(labels, probabilities) if 0 < positives < n else None
    return StepScore(step, n, positives, auc, accuracy(labels, probabilities, THRESHOLD))


class OutputJoin:
    """Collects output records against the labels; `evaluate` computes the scores."""

    def __init__(self, labels: Iterable[SequenceLabel]) -> None:
        self._labels = {item.key: item for item in labels}
        self._steps: dict[str, dict[int, float]] = {key: {} for key in self._labels}
        self._seen: set[tuple[str, int | None, int | None, int, bool]] = set()
        self._latencies: list[float] = []
        self._versions: set[str] = set()
        self._outputs = 0
        self._repeats = 0
        self._unlabelled = 0
        self._complete = 0

    @property
    def labelled(self) -> int:
        return len(self._labels)

    @property
    def complete(self) -> int:
        return self._complete

    def add(self, out: OutputRecord, produced_ms: int | None) -> None:
        """One output record; `produced_ms` is its Kafka timestamp (None if it has none)."""
        label = self._labels.get(out.sequence_id)
        if label is None:
            self._unlabelled += 1
            return
        self._outputs += 1
        ident = (out.sequence_id, out.partition, out.offset, out.step, out.final)
        if ident in self._seen:
            self._repeats += 1
            return
        self._seen.add(ident)
        self._versions.add(out.model_version)
        if out.ts is not None and produced_ms is not None:
            self._latencies.append(float(produced_ms - out.ts))
        steps = self._steps[out.sequence_id]
        if out.step not in steps:
            steps[out.step] = out.outputs[0]
            if out.step == label.length:
                self._complete += 1

    def evaluate(
        self, n_trajectories: int = 4, trajectory_length: int = TRAINED_LENGTH
    ) -> Evaluation:
        complete = [
            (item, self._steps[key])
            for key, item in self._labels.items()
            if item.length in self._steps[key]
        ]
        whole = [(item, steps) for item, steps in complete if not item.cut_short]
        final_y = [item.label for item, _ in whole]
        final_p = [steps[item.length] for item, steps in whole]
        return Evaluation(
            labelled=len(self._labels),
            complete=len(complete),
            cut_short=sum(item.cut_short for item in self._labels.values()),
            outputs=self._outputs,
            repeats=self._repeats,
            unlabelled_outputs=self._unlabelled,
            model_versions=tuple(sorted(self._versions)),
            by_step=self._by_step(),
            final=score(final_y, final_p, 0),
            latency=latency_summary(self._latencies),
            trajectories=self._trajectories(n_trajectories, trajectory_length),
            final_probabilities=(
                tuple(p for y, p in zip(final_y, final_p, strict=True) if y == 0),
                tuple(p for y, p in zip(final_y, final_p, strict=True) if y == 1),
            ),
            latencies_ms=tuple(self._latencies),
        )

    def _by_step(self) -> tuple[StepScore, ...]:
        longest = max((max(s) for s in self._steps.values() if s), default=0)
        scores = []
        for step in range(1, longest + 1):
            y: list[int] = []
            p: list[float] = []
            for key, steps in self._steps.items():
                prob = steps.get(step)
                if prob is not None and step <= self._labels[key].length:
                    y.append(self._labels[key].label)
                    p.append(prob)
            if y:
                scores.append(score(y, p, step))
        return tuple(scores)

    def _trajectories(self, n: int, min_length: int) -> tuple[Trajectory, ...]:
        """The first `n` sequences of each label, in label file order, not cut short, with a
        probability at every step and at least `min_length` steps (else at least two): the
        figure shows how probabilities move as samples arrive."""
        picked: list[Trajectory] = []
        for wanted in (1, 0):
            chosen: list[Trajectory] = []
            for shortest in (min_length, 2):
                chosen = self._full_trajectories(wanted, shortest, n)
                if len(chosen) == n:
                    break
            picked += chosen
        return tuple(picked)

    def _full_trajectories(self, label: int, shortest: int, n: int) -> list[Trajectory]:
        chosen: list[Trajectory] = []
        for key, item in self._labels.items():
            if len(chosen) == n:
                break
            steps = self._steps[key]
            if item.label != label or item.length < shortest or item.cut_short:
                continue
            if all(s in steps for s in range(1, item.length + 1)):
                probs = tuple(steps[s] for s in range(1, item.length + 1))
                chosen.append(Trajectory(key, item.label, probs))
        return chosen
