"""Scenario 1: three workers, SIGKILLed one at a time at random moments and restarted, while the
input streams in. Zero lost, zero wrong; exactly-once: zero duplicates for a read_committed reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.accounting import Sent, classify, expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder, Raw
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage
from tests.service_harness import interleaved_stream

WORKERS = ("w0", "w1", "w2")


def stream(rng: np.random.Generator, sequences: int, max_len: int, prefix: str) -> list[Raw]:
    return [
        (key.encode(), value)
        for key, value in interleaved_stream(rng, sequences, max_len=max_len, key_prefix=prefix)
    ]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_hard_kills(
    guarantee: str, stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(101 if guarantee == "exactly-once" else 100)
    records = stream(rng, p.kill_sequences, p.kill_max_len, "kill")
    positions = [Sent(key, value, 0, i) for i, (key, value) in enumerate(records)]
    assert classify(positions).samples >= p.kill_min_samples
    dep = deployment(guarantee=guarantee)
    fleet = dep.fleet
    started = time.monotonic()
    for slot in WORKERS:
        fleet.start(slot)
    fleet.wait_ready(len(WORKERS))
    # The input arrives over about as long as the kills take, so they land mid-stream.
    mean_gap = sum(p.kill_gap_s) / 2
    feeder = Feeder(dep.bootstrap, dep.input, records, rate=len(records) / (p.kills * mean_gap))
    feeder.start()
    kills: list[dict[str, object]] = []
    for _ in range(p.kills):
        # Chaos timing: a random pause, then a random worker that is serving.
        time.sleep(float(rng.uniform(*p.kill_gap_s)))
        ready = fleet.wait_ready(1)
        victim = ready[int(rng.integers(len(ready)))]
        fleet.kill(victim)
        kills.append({"slot": victim.slot, "at_record": feeder.sent})
        fleet.start(victim.slot)
    sent = feeder.result()
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True)
    summary = conclude(
        dep,
        scenario="hard-kills",
        expected=expected,
        started=started,
        drain_timeout_s=600,
        details={
            "sequences": p.kill_sequences,
            "kills": len(kills),
            "kill_points": kills,
            "workers": len(WORKERS),
        },
    )
    assert len(kills) >= p.kills
    assert_clean(summary)
