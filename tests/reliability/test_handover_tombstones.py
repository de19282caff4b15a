"""Scenario 10: revoke with pending tombstones. Sequences end on worker A; a second worker B joins
before A's next checkpoint, so half of the partitions move while A still holds the tombstones of
their ended sequences. B starts new sequences under the same keys and checkpoints them; then A
stops (its last checkpoints run). A worker writes changelog records only for partitions it owns:
restoring from the changelog must give B's state for every key, and after B restarts, the keys'
next samples continue B's sequences."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from producer_sim.cluster.processes import wait_for
from tests.kafka_harness import committed_offsets
from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.phases import feed, keys, newest_changelog, samples
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import PARTITIONS, Stage

ASSIGNED = "lstm_scorer_assigned_partitions"
CONSUMED = "lstm_scorer_records_consumed_total"
NEVER_S = 600_000  # A's commit interval: it checkpoints only when revoked and when it stops


def test_a_revoked_partitions_tombstones_do_not_delete_the_new_owners_state(
    stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    rng = np.random.default_rng(900)
    names = keys("handover", p.handover_keys)
    dep = deployment()
    fleet = dep.fleet
    started = time.monotonic()
    a = fleet.start("a", "--commit-interval-ms", str(NEVER_S))
    a.wait_ready()
    sent = feed(dep, samples(rng, names, 3, end=True))  # every sequence ends on A
    wait_for(lambda: a.metric(CONSUMED) >= len(sent) or None, 120, "A to take in the ends")
    b = fleet.start("b")  # joins: A is revoked half its partitions, tombstones still pending
    b.wait_ready()
    moved = int(b.metric(ASSIGNED))
    assert moved > 0 and int(a.metric(ASSIGNED)) == PARTITIONS - moved
    sent += feed(dep, samples(rng, names, 2))  # new sequences under the same keys

    def b_committed() -> bool:
        ends = dep.input_ends()
        done = committed_offsets(dep.bootstrap, dep.group, dep.input, PARTITIONS)
        return sum(done[q] >= ends[q] for q in range(PARTITIONS)) >= moved

    wait_for(lambda: b_committed() or None, 120, "B to checkpoint the new sequences")
    assert fleet.terminate(fleet.running()[0]) == 0  # A stops: its last checkpoints run
    wait_for(lambda: b.metric(ASSIGNED) == PARTITIONS or None, 120, "B to own every partition")
    dep.wait_drained(120, "the new sequences to be committed")
    newest = newest_changelog(dep)
    deleted = sorted(k.decode() for k in names if newest.get(k) is None)
    assert fleet.terminate(fleet.running()[0]) == 0
    fleet.start("b").wait_ready()  # B restarted: restores from the changelog
    sent += feed(dep, samples(rng, names, 2, end=True))
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True)
    summary = conclude(
        dep,
        scenario="handover-tombstones",
        expected=expected,
        started=started,
        drain_timeout_s=300,
        details={
            "keys": len(names),
            "partitions_moved": moved,
            "states_deleted_by_a_tombstone": len(deleted),
        },
    )
    assert not deleted, (
        f"{len(deleted)} keys' newest changelog record is a tombstone: {deleted[:5]}"
    )
    assert_clean(summary)
