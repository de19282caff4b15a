"""Scenario 2: the broker stops and starts again mid-run. The workers are left alone: they must
recover by themselves, and nothing may be lost or wrong."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from producer_sim.cluster.processes import wait_for
from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage
from tests.reliability.test_hard_kills import stream

WORKERS = ("w0", "w1")
FEED_SECONDS = 30.0


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_broker_restart(
    guarantee: str, stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(200 if guarantee == "at-least-once" else 201)
    records = stream(rng, p.restart_sequences, 20, "bounce")
    dep = deployment(guarantee=guarantee)
    fleet = dep.fleet
    started = time.monotonic()
    for slot in WORKERS:
        fleet.start(slot)
    fleet.wait_ready(len(WORKERS))
    feeder = Feeder(dep.bootstrap, dep.input, records, rate=len(records) / FEED_SECONDS)
    feeder.start()
    wait_for(lambda: feeder.has_sent(len(records) // 3), 120, "a third of the input")
    t0 = time.monotonic()
    stage.broker.stop()
    stopped_at = feeder.sent
    time.sleep(p.restart_down_s)  # chaos timing: how long the broker stays away
    stage.broker.start()
    outage = time.monotonic() - t0
    sent = feeder.result()
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True)
    alive = len(fleet.alive())
    summary = conclude(
        dep,
        scenario="broker-restart",
        expected=expected,
        started=started,
        drain_timeout_s=600,
        details={
            "workers": len(WORKERS),
            "broker_down_at_record": stopped_at,
            "broker_outage_seconds": round(outage, 1),
            "workers_alive_after_restart": alive,
        },
    )
    assert_clean(summary)
    assert alive == len(WORKERS), "a worker did not survive the broker restart"
