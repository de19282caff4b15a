"""Scenario 11: `--max-steps` changed across a restart, from 0 (unlimited) to 4 while sequences are
at step 5. The next sample of such a sequence is final with reason `max_steps` (and the one after
starts a new sequence); keys that start under the new limit end at step 4; no other reason
changes, and the worker does not crash."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from consumer.codecs.inputs import InputRecord
from tests.reliability.accounting import Position, expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.phases import feed, keys, samples
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage

NEW_LIMIT = 4


def test_max_steps_lowered_below_live_steps(
    stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(1000)
    old = keys("long", p.max_steps_keys)
    new = keys("fresh", p.max_steps_keys // 4)
    dep = deployment()
    fleet = dep.fleet
    started = time.monotonic()
    fleet.start("w0").wait_ready()
    sent = feed(dep, samples(rng, old, 5))  # every old key at step 5, unlimited
    dep.wait_drained(300, "steps 1-5 to be committed")
    assert fleet.terminate(fleet.running()[0]) == 0
    fleet.start("w0", "--max-steps", str(NEW_LIMIT)).wait_ready()
    later = feed(dep, samples(rng, old, 2) + samples(rng, new, 5))
    after: set[Position] = {(s.partition, s.offset) for s in later}

    def limit(rec: InputRecord) -> int:
        return NEW_LIMIT if (rec.partition, rec.offset) in after else 0

    expected = expect(sent + later, stage.model, workdir=tmp_path, keras=True, max_steps=limit)
    summary = conclude(
        dep,
        scenario="max-steps-change",
        expected=expected,
        started=started,
        drain_timeout_s=300,
        details={"keys_at_step_5": len(old), "new_keys": len(new), "new_limit": NEW_LIMIT},
    )
    assert_clean(summary)
