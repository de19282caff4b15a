"""Scenario 12: a producer with another partitioner writes some records of live keys to another
partition. Those records go to the dead-letter topic with reason `wrong_partition` (header
`error`); the key's own records, before and after, are scored as if they had not been there."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tests.reliability.accounting import Position, expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.phases import feed, keys, produce_to, samples
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import PARTITIONS, Stage


def test_records_on_the_wrong_partition_are_dead_lettered(
    stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(1100)
    names = keys("split", p.wrong_partition_keys)
    dep = deployment()
    fleet = dep.fleet
    started = time.monotonic()
    fleet.start("w0").wait_ready()
    sent = feed(dep, samples(rng, names, 2))
    home = {s.key: s.partition for s in sent}
    dep.wait_drained(300, "samples 1-2 to be committed")
    # Mid-sequence, a third of the keys get one record on the next partition over.
    strays = [
        (key, value, (home[key] + 1) % PARTITIONS) for key, value in samples(rng, names[::3], 1)
    ]
    wrong = produce_to(dep, strays)
    dep.wait_drained(300, "the stray records to be committed")
    sent += wrong + feed(dep, samples(rng, names, 2, end=True))
    misplaced: dict[Position, str] = {(s.partition, s.offset): "wrong_partition" for s in wrong}
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True, exclude=misplaced)
    summary = conclude(
        dep,
        scenario="wrong-partition",
        expected=expected,
        started=started,
        drain_timeout_s=300,
        details={"keys": len(names), "misplaced_records": len(wrong)},
    )
    assert_clean(summary)
    assert summary.dlq_reasons == {"wrong_partition": len(wrong)}
