"""Scenario 3: workers join (new starts) and leave (SIGTERM) over and over while the input streams
in, so partitions move between workers many times. Zero lost, zero wrong, every stop clean;
exactly-once: zero duplicates for a read_committed reader."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage
from tests.reliability.test_hard_kills import stream

MOST_WORKERS = 4  # on two cores, more would mostly measure start-up contention


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_rebalance_storm(
    guarantee: str, stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(300 if guarantee == "at-least-once" else 301)
    records = stream(rng, p.storm_sequences, 20, "storm")
    dep = deployment(guarantee=guarantee)
    fleet = dep.fleet
    started = time.monotonic()
    names = iter(f"s{i}" for i in range(10_000))
    for _ in range(2):
        fleet.start(next(names))
    fleet.wait_ready(2)
    mean_gap = sum(p.storm_gap_s) / 2
    rate = len(records) / (p.storm_events * mean_gap)
    feeder = Feeder(dep.bootstrap, dep.input, records, rate=rate)
    feeder.start()
    events: list[str] = []
    stop_codes: list[int] = []
    while len(events) < p.storm_events:
        time.sleep(float(rng.uniform(*p.storm_gap_s)))  # chaos timing
        ready = fleet.ready()
        crowded = len(fleet.alive()) >= MOST_WORKERS
        if len(ready) >= 2 and (crowded or rng.random() < 0.5):
            victim = ready[int(rng.integers(len(ready)))]
            stop_codes.append(fleet.terminate(victim))
            events.append(f"leave {victim.slot}")
        elif not crowded:
            slot = next(names)
            fleet.start(slot)
            events.append(f"join {slot}")
    sent = feeder.result()
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True)
    summary = conclude(
        dep,
        scenario="rebalance-storm",
        expected=expected,
        started=started,
        drain_timeout_s=600,
        details={
            "joins": sum(e.startswith("join") for e in events),
            "leaves": sum(e.startswith("leave") for e in events),
            "events": events,
        },
    )
    assert_clean(summary)
    assert stop_codes and all(code == 0 for code in stop_codes)
