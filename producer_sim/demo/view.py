"""The demo's live view: a few lines redrawn in place, from the simulator's counts and the
workers' /metrics. In a log (not a terminal) one plain line every few seconds instead."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TextIO

from prometheus_client.parser import text_string_to_metric_families

from producer_sim.simulator.progress import Snapshot

# Summed over every series of the metric (the lag has one per partition, the DLQ one per reason).
_METRICS = {
    "records": "lstm_scorer_records_consumed_total",
    "samples": "lstm_scorer_samples_consumed_total",
    "outputs": "lstm_scorer_outputs_produced_total",
    "active": "lstm_scorer_active_sequences",
    "lag": "lstm_scorer_consumer_lag_records",
    "dlq": "lstm_scorer_dlq_records_total",
}
_PLAIN_EVERY_S = 5.0
_BY_VERSION = "lstm_scorer_model_sequences"


@dataclass(frozen=True)
class WorkerReading:
    up: bool
    records: float = 0.0
    samples: float = 0.0
    outputs: float = 0.0
    active: float = 0.0
    lag: float = 0.0
    dlq: float = 0.0
    # Live sequences per model version: two during a rollout.
    versions: dict[str, float] = field(default_factory=dict)


def parse_metrics(text: str) -> WorkerReading:
    totals = dict.fromkeys(_METRICS, 0.0)
    by_name = {name: key for key, name in _METRICS.items()}
    versions: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = by_name.get(sample.name)
            if key is not None:
                totals[key] += sample.value
            elif sample.name == _BY_VERSION:
                version = sample.labels["model_version"]
                versions[version] = versions.get(version, 0.0) + sample.value
    return WorkerReading(up=True, versions=versions, **totals)


def scrape(port: int, timeout_s: float = 2.0) -> WorkerReading:
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return parse_metrics(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return WorkerReading(up=False)


def ready(port: int, timeout_s: float = 2.0) -> bool:
    """Whether the worker's /readyz answers 200 (partitions assigned and restored)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout_s) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def combined(readings: list[WorkerReading]) -> WorkerReading:
    up = [r for r in readings if r.up]
    versions: dict[str, float] = {}
    for r in up:
        for version, n in r.versions.items():
            versions[version] = versions.get(version, 0.0) + n
    return WorkerReading(
        up=bool(up),
        records=sum(r.records for r in up),
        samples=sum(r.samples for r in up),
        outputs=sum(r.outputs for r in up),
        active=sum(r.active for r in up),
        lag=sum(r.lag for r in up),
        dlq=sum(r.dlq for r in up),
        versions=versions,
    )


class LiveView:
    def __init__(self, stream: TextIO, is_tty: bool) -> None:
        self._stream = stream
        self._tty = is_tty
        self._drawn = 0  # lines drawn last time, to go back over
        self._previous: tuple[float, WorkerReading] | None = None
        self._last_plain = -_PLAIN_EVERY_S

    def lines(
        self, phase: str, now: float, sim: Snapshot | None, readings: list[WorkerReading]
    ) -> list[str]:
        total = combined(readings)
        samples_rate = outputs_rate = 0.0
        if self._previous is not None and now > self._previous[0]:
            then, before = self._previous
            # max(0, ...): a restarted worker starts its counters again from zero.
            samples_rate = max(0.0, total.samples - before.samples) / (now - then)
            outputs_rate = max(0.0, total.outputs - before.outputs) / (now - then)
        self._previous = (now, total)
        sim_line = "simulator: not running"
        if sim is not None:
            sim_line = (
                f"simulator: {sim.records:,} records sent ({sim.samples:,} samples, "
                f"{sim.faults:,} malformed), {sim.delivery_errors:,} delivery errors"
            )
        up = sum(r.up for r in readings)
        shown = [
            f"active sequences {total.active:,.0f}, consumer lag {total.lag:,.0f}, "
            f"DLQ {total.dlq:,.0f}"
        ]
        if len(total.versions) > 1:  # a rollout: where the sequences are
            parts = [f"{v[:8]} {n:,.0f}" for v, n in sorted(total.versions.items())]
            shown.append("sequences by model version: " + ", ".join(parts))
        return [
            f"[{phase}] {sim_line}",
            f"workers {up}/{len(readings)} up: samples in {samples_rate:,.0f}/s, "
            f"probabilities out {outputs_rate:,.0f}/s",
            *shown,
        ]

    def show(
        self, phase: str, now: float, sim: Snapshot | None, readings: list[WorkerReading]
    ) -> None:
        text = self.lines(phase, now, sim, readings)
        if self._tty:
            # Back to the first line drawn last time, then each line cleared and rewritten.
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self._stream.write(up + "".join(line + "\x1b[K\n" for line in text))
            self._drawn = len(text)
        elif now - self._last_plain >= _PLAIN_EVERY_S:
            self._last_plain = now
            self._stream.write(" | ".join(text) + "\n")
        self._stream.flush()

    def release(self) -> None:
        """What is printed next goes below the view, which stays as it was."""
        self._drawn = 0
