"""Scenario 8: a worker down for twice the idle timeout while the producers keep sending, with a
backlog of many micro-batches. A sequence whose samples were produced within the idle timeout of
each other must not be split: every key comes out as steps 1..6 with no `idle_timeout` final in
between. Then real idleness (no more input) still ends every sequence with exactly one
`idle_timeout` final, repeating its last output."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from tests.reliability.accounting import expect, outputs_of
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.phases import feed, keys, samples
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage

IDLE_TIMEOUT_S = 8.0
MAX_BATCH = 64  # so the backlog after the downtime is many micro-batches
ACTIVE = "lstm_scorer_active_sequences"


def test_downtime_longer_than_the_idle_timeout(
    stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(700)
    names = keys("down", p.downtime_keys)
    flags = ("--idle-timeout-s", str(IDLE_TIMEOUT_S), "--max-batch", str(MAX_BATCH))
    dep = deployment(extra_args=flags)
    fleet = dep.fleet
    started = time.monotonic()
    first = fleet.start("w0")
    first.wait_ready()
    sent = feed(dep, samples(rng, names, 3))
    dep.wait_drained(300, "samples 1-3 to be committed")
    assert fleet.terminate(fleet.running()[0]) == 0
    stopped = time.monotonic()
    sent += feed(dep, samples(rng, names, 3))  # samples 4-6, all at once, while it is down
    # The downtime itself is the fault being injected: twice the idle timeout, by the clock.
    time.sleep(max(0.0, stopped + 2 * IDLE_TIMEOUT_S - time.monotonic()))
    downtime = time.monotonic() - stopped
    again = fleet.start("w0")  # the same pod restarted: the same instance id
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True, idle_finals=True)

    def all_ended() -> bool:
        return again.alive() and again.http("/readyz")[0] == 200 and again.metric(ACTIVE) == 0

    summary = conclude(
        dep,
        scenario="downtime",
        expected=expected,
        started=started,
        drain_timeout_s=600,
        # Idle finals come a timeout after the last input: quiet must outlast that.
        quiet_s=IDLE_TIMEOUT_S + 4,
        settled=all_ended,
        details={"keys": len(names), "downtime_seconds": round(downtime, 1)},
    )
    assert_clean(summary)
    # Repeats of one final would pass the tally as at-least-once duplicates; they must not exist.
    idle = Counter(
        o.sequence_id for o in outputs_of(dep.read(dep.output)) if o.reason == "idle_timeout"
    )
    assert set(idle) == {n.decode() for n in names}
    assert max(idle.values()) == 1, f"{sum(v > 1 for v in idle.values())} keys ended twice"
