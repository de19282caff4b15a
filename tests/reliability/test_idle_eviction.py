"""Scenario 6: sequences that never end, each under a key of its own, far more of them than a
worker could hold for long. Idle eviction keeps the state table (and so memory) bounded, and every
evicted sequence gets its final output with reason `idle_timeout`, repeating its last output."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from producer_sim.cluster.processes import wait_for
from producer_sim.cluster.worker import Worker
from tests.reliability.accounting import Expected, Ident, expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder, Raw
from tests.reliability.fleet import memory_kb
from tests.reliability.output_table import OutputTable
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage

FEED_RATE = 10_000  # records/s offered: a million keys take about 100 s to arrive
ACTIVE = "lstm_scorer_active_sequences"
CONSUMED = "lstm_scorer_records_consumed_total"
EVICTION_ROUND_S = 1.0  # the worker looks for idle sequences about once a second


def never_ending(rng: np.random.Generator, keys: int) -> list[Raw]:
    """One record per key: a single sample, or for every tenth key a chunk of three."""
    rows = rng.normal(0, 1, (keys, 3, 3)).round(4)
    out: list[Raw] = []
    for i in range(keys):
        features = rows[i].tolist() if i % 10 == 0 else rows[i, 0].tolist()
        out.append((f"idle-{i}".encode(), orjson.dumps({"features": features})))
    return out


def with_idle_finals(expected: Expected) -> Expected:
    """The oracle (which never evicts) plus each sequence's eviction: its last output again,
    final, reason idle_timeout."""
    last: dict[str, tuple[Ident, Any]] = {}
    outputs = expected.outputs.as_dict()
    for ident, out in outputs.items():
        if ident[0] not in last or ident[3] > last[ident[0]][0][3]:
            last[ident[0]] = (ident, out)
    for (key, partition, offset, step, _), out in last.values():
        final = dataclasses.replace(out, final=True, reason="idle_timeout")
        outputs[(key, partition, offset, step, True)] = final
    return dataclasses.replace(expected, outputs=OutputTable.from_dict(outputs))


class Sampler(threading.Thread):
    """The worker's live sequences and records consumed so far, twice a second, until stopped
    (the peak of its resident memory is the kernel's VmHWM)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(name="sampler", daemon=True)
        self.worker = worker
        self.samples: list[tuple[float, float, float]] = []  # time, consumed, live
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            if self.worker.alive():
                consumed, live = self.worker.metric(CONSUMED), self.worker.metric(ACTIVE)
                self.samples.append((time.monotonic(), consumed, live))

    def peak_live(self) -> int:
        return int(max(live for _, _, live in self.samples))

    def most_consumed_within(self, seconds: float) -> int:
        """The most records the worker took in over any `seconds` (to the sampling step)."""
        most, first = 0.0, 0
        for t, consumed, _ in self.samples:
            while t - self.samples[first][0] > seconds + 0.5:
                first += 1
            most = max(most, consumed - self.samples[first][1])
        return int(most)


def test_idle_eviction(stage: Stage, deployment: DeploymentFactory, tmp_path: Path) -> None:
    p = stage.profile
    records = never_ending(np.random.default_rng(600), p.idle_keys)
    dep = deployment(extra_args=("--idle-timeout-s", f"{p.idle_timeout_s:g}"))
    started = time.monotonic()
    worker = dep.fleet.start("w0")
    assert worker.proc is not None
    pid = worker.proc.pid
    worker.wait_ready(180)
    rss_ready_mb = memory_kb(pid, "VmRSS") / 1024
    sampler = Sampler(worker)
    sampler.start()
    feeder = Feeder(dep.bootstrap, dep.input, records, rate=FEED_RATE)
    feeder.start()
    sent = feeder.result(timeout_s=1800)
    expected = with_idle_finals(expect(sent, stage.model, workdir=tmp_path))

    def evicted() -> dict[str, Any]:
        wait_for(lambda: worker.metric(ACTIVE) == 0 or None, 300, "every sequence evicted")
        sampler.stopped.set()
        window = p.idle_timeout_s + EVICTION_ROUND_S
        return {
            "peak_active_sequences": sampler.peak_live(),
            "most_records_within_idle_timeout": sampler.most_consumed_within(window),
            # Nothing else ends a sequence here: every end counted is an idle eviction.
            "sequences_ended_reported": int(worker.metric("lstm_scorer_sequences_ended_total")),
            "peak_rss_mb": round(memory_kb(pid) / 1024),
        }

    summary = conclude(
        dep,
        scenario="idle-eviction",
        expected=expected,
        started=started,
        drain_timeout_s=1800,
        details={
            "distinct_keys": p.idle_keys,
            "idle_timeout_s": p.idle_timeout_s,
            "feed_rate": FEED_RATE,
            "rss_at_ready_mb": round(rss_ready_mb),
        },
        before_stop=evicted,
    )
    assert_clean(summary)
    d = summary.details
    assert d["sequences_ended_reported"] == p.idle_keys
    # Without eviction every key would stay. With it, the table holds no more than what came in
    # within one idle timeout (and one eviction round), however many keys pass through.
    assert 0 < d["peak_active_sequences"] <= d["most_records_within_idle_timeout"]
    assert d["peak_active_sequences"] < p.idle_keys / 2
    assert d["peak_rss_mb"] - d["rss_at_ready_mb"] < 400
