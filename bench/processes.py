"""The service workers the benchmarks start (on `producer_sim.cluster`'s worker), with what the
benchmarks measure of them: resident memory and the counters their figures are explained with.

A worker logs JSON lines, so events such as "running" and "restored" are read from its log rather
than guessed from time. Every process started is stopped by `stop` (SIGTERM, then SIGKILL) in the
caller's `finally`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bench.memory import rss_bytes
from producer_sim.cluster import REPO, worker
from producer_sim.cluster.ports import free_port

# REPO too: the reliability scenarios' accounting imports it from here.
__all__ = ["REPO", "Worker", "WorkerCounters"]


@dataclass(frozen=True)
class WorkerCounters:
    batches: float
    batch_records: float
    commits: float
    commit_seconds: float
    # Seconds a checkpoint held the loop, by step (`lstm_scorer_commit_blocked_seconds`).
    step_seconds: dict[str, float] = field(default_factory=dict)

    def since(self, before: WorkerCounters) -> WorkerCounters:
        return WorkerCounters(
            self.batches - before.batches,
            self.batch_records - before.batch_records,
            self.commits - before.commits,
            self.commit_seconds - before.commit_seconds,
            {s: v - before.step_seconds.get(s, 0.0) for s, v in self.step_seconds.items()},
        )

    @property
    def mean_batch_records(self) -> float:
        return self.batch_records / self.batches if self.batches else 0.0

    @property
    def mean_commit_ms(self) -> float:
        return 1000 * self.commit_seconds / self.commits if self.commits else 0.0

    def mean_step_ms(self) -> dict[str, float]:
        """Milliseconds each step of a checkpoint held the loop, per checkpoint."""
        if not self.commits:
            return {}
        return {s: 1000 * v / self.commits for s, v in self.step_seconds.items() if v}


class Worker(worker.Worker):
    """A service worker logging JSON lines, with its HTTP port."""

    @classmethod
    def service(cls, args: Sequence[str], log_path: Path) -> Self:
        flags = [*args, "--log-format", "json", "--metrics-addr", "127.0.0.1"]
        return cls(flags, log_path, port=free_port())

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stage_us_per_record(self) -> dict[str, float]:
        """Microseconds per consumed record spent in each stage of the loop, over its life."""
        samples = self._samples()
        seconds = _by_label(samples, "lstm_scorer_stage_seconds_total", "stage")
        records = _total(samples, "lstm_scorer_records_consumed_total")
        return {stage: 1e6 * s / records if records else 0.0 for stage, s in seconds.items()}

    def counters(self) -> WorkerCounters:
        """The counters the benchmarks explain their figures with, summed over every series,
        from one read of /metrics."""
        samples = self._samples()
        return WorkerCounters(
            batches=_total(samples, "lstm_scorer_batch_records_count"),
            batch_records=_total(samples, "lstm_scorer_batch_records_sum"),
            commits=_total(samples, "lstm_scorer_commit_seconds_count"),
            commit_seconds=_total(samples, "lstm_scorer_commit_seconds_sum"),
            step_seconds=_by_label(samples, "lstm_scorer_commit_blocked_seconds_sum", "step"),
        )

    def _samples(self) -> list[Sample]:
        status, body = self.http("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def _total(samples: list[Sample], name: str) -> float:
    """The sum of every series of one sample name."""
    return sum(s.value for s in samples if s.name == name)


def _by_label(samples: list[Sample], name: str, label: str) -> dict[str, float]:
    """One sample name's series, summed by the value of `label`."""
    found: dict[str, float] = {}
    for s in samples:
        if s.name == name:
            found[s.labels[label]] = found.get(s.labels[label], 0.0) + s.value
    return found
