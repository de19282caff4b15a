"""Scenarios 14-16: three brokers (replication 3, min.insync.replicas 2, mutual TLS, ACLs) failing
under load, in both guarantees, checked against Keras on every prefix by a reader that reads
until quiet.

14. The leaders of an input, an output and a changelog partition SIGKILLed in turn, each
    started again and caught up before the next.
15. A broker SIGKILLed during a restore: a worker is SIGKILLed and started again (it restores its
    partitions from the changelog), and the node leading the most of its changelog partitions is
    SIGKILLed as it starts, so the restore reads from leaders that are gone until the controller
    moves them.
16. A rolling restart: each broker stopped cleanly and started again, one at a time.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient

from producer_sim.cluster.broker_cluster import LocalCluster
from producer_sim.cluster.processes import wait_for
from tests.kafka_harness import committed_offsets
from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.secured_cluster import describe_partition, leader_of, wait_in_sync
from tests.reliability.stage import PARTITIONS, Deployment, Stage
from tests.reliability.test_hard_kills import stream

WORKERS = ("w0", "w1")
GUARANTEES = ["at-least-once", "exactly-once"]


def cluster_of(stage: Stage) -> LocalCluster:
    assert isinstance(stage.broker, LocalCluster)
    return stage.broker


def started(dep: Deployment, seed: int, prefix: str) -> tuple[Feeder, float]:
    """Two workers ready and the load running, spread over the profile's feed time."""
    p = dep.stage.profile
    began = time.monotonic()
    for slot in WORKERS:
        dep.fleet.start(slot)
    dep.fleet.wait_ready(len(WORKERS))
    records = stream(np.random.default_rng(seed), p.cluster_sequences, 20, prefix)
    feeder = Feeder(dep.bootstrap, dep.input, records, rate=len(records) / p.cluster_feed_s)
    feeder.start()
    return feeder, began


def new_leader(admin: AdminClient, topic: str, gone: int, role: str) -> int:
    """The partition's leader once it is not `gone` (nor none)."""

    def moved() -> int | None:
        leader = leader_of(admin, topic)
        return leader if leader not in (gone, -1) else None

    try:
        return wait_for(moved, 60, f"the {role} leader to move off node {gone}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {describe_partition(admin, topic)}") from None


def at_fraction(feeder: Feeder, fraction: float) -> None:
    count = math.ceil(len(feeder.records) * fraction)
    try:
        wait_for(lambda: feeder.has_sent(count), 300, f"{fraction:.0%} of the input")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {feeder.describe()}") from None


def finish(
    dep: Deployment, feeder: Feeder, began: float, scenario: str, details: dict[str, Any]
) -> None:
    expected = expect(feeder.result(), dep.stage.model, workdir=dep.workdir, keras=True)
    alive = len(dep.fleet.alive())
    summary = conclude(
        dep,
        scenario=scenario,
        expected=expected,
        started=began,
        drain_timeout_s=600,
        details={"brokers": cluster_of(dep.stage).brokers, **details, "workers_alive": alive},
    )
    assert_clean(summary)


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_partition_leaders_killed(
    guarantee: str, cluster_stage: Stage, cluster_deployment: DeploymentFactory
) -> None:
    cluster = cluster_of(cluster_stage)
    admin = cluster_stage.admin
    down_s = cluster_stage.profile.cluster_down_s
    dep = cluster_deployment(guarantee=guarantee)
    feeder, began = started(dep, 1400 if guarantee == "at-least-once" else 1401, "leader")
    kills: list[dict[str, Any]] = []
    for i, (role, topic) in enumerate(
        (("input", dep.input), ("output", dep.output), ("changelog", dep.changelog))
    ):
        at_fraction(feeder, (i + 1) / 4)
        node = leader_of(admin, topic)
        cluster.kill_node(node)
        killed_at = time.monotonic()
        # The controller moves the leadership once the node misses its heartbeats
        # (broker.session.timeout.ms, 9 s by default); the node stays away a while longer.
        moved_to = new_leader(admin, topic, node, role)
        moved_after = time.monotonic() - killed_at
        time.sleep(down_s)  # chaos timing: how long the node stays away after that
        cluster.start_node(node)
        caught_up = wait_in_sync(admin, cluster_stage.replicas)
        kills.append(
            {"leader_of": f"{role}[0]", "node": node, "moved_to": moved_to,
             "moved_after_s": round(moved_after, 1), "caught_up_s": round(caught_up, 1)}
        )  # fmt: skip
    finish(dep, feeder, began, "cluster-leaders-killed", {"kills": kills, "down_s": down_s})


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_broker_killed_during_restore(
    guarantee: str, cluster_stage: Stage, cluster_deployment: DeploymentFactory
) -> None:
    cluster = cluster_of(cluster_stage)
    admin = cluster_stage.admin
    dep = cluster_deployment(guarantee=guarantee)
    feeder, began = started(dep, 1500 if guarantee == "at-least-once" else 1501, "restore")
    at_fraction(feeder, 0.5)
    # State to restore: w1's partitions' sequences, checkpointed to the changelog.
    wait_for(lambda: all_committed_once(dep) or None, 120, "a first checkpoint")
    owned = wait_for(lambda: assigned(dep, "w1") or None, 60, "w1's partitions")
    victim = next(launch for launch in dep.fleet.alive() if launch.slot == "w1")
    dep.fleet.kill(victim)
    # The restarted worker appends to the same log: its restore is the first one after these.
    seen = len(victim.worker.events("restored"))
    leaders = Counter(leader_of(admin, dep.changelog, p) for p in owned)
    node = leaders.most_common(1)[0][0]
    restarted = dep.fleet.start("w1")
    cluster.kill_node(node)
    killed_at = time.monotonic()
    restore = wait_for(
        lambda: ((done := restarted.events("restored")[seen:]) and done[0]) or None,
        300,
        "the restarted worker's restore",
    )
    restore_ended_s = time.monotonic() - killed_at
    time.sleep(cluster_stage.profile.cluster_down_s)
    cluster.start_node(node)
    caught_up = wait_in_sync(admin, cluster_stage.replicas)
    finish(
        dep,
        feeder,
        began,
        "cluster-broker-killed-in-restore",
        {
            "restored_partitions": restore["partitions"],
            "restored_records": restore["records"],
            "changelog_leaders_killed": leaders[node],
            "node": node,
            "restore_done_after_kill_s": round(restore_ended_s, 1),
            "caught_up_s": round(caught_up, 1),
        },
    )


def assigned(dep: Deployment, slot: str) -> list[int]:
    """The input partitions the group has assigned to the worker of `slot` (its static member)."""
    group = dep.stage.admin.describe_consumer_groups([dep.group])[dep.group].result(10)
    return sorted(
        tp.partition
        for member in group.members
        if member.group_instance_id == slot
        for tp in member.assignment.topic_partitions
        if tp.topic == dep.input
    )


def all_committed_once(dep: Deployment) -> bool:
    """Whether every input partition has a committed offset (so its state is checkpointed)."""
    offsets = committed_offsets(dep.bootstrap, dep.group, dep.input, PARTITIONS)
    return all(offset > 0 for offset in offsets.values())


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_rolling_restart(
    guarantee: str, cluster_stage: Stage, cluster_deployment: DeploymentFactory
) -> None:
    cluster = cluster_of(cluster_stage)
    admin = cluster_stage.admin
    dep = cluster_deployment(guarantee=guarantee)
    feeder, began = started(dep, 1600 if guarantee == "at-least-once" else 1601, "rolling")
    steps: list[dict[str, Any]] = []
    for node in cluster.nodes:
        at_fraction(feeder, node / (cluster.brokers + 1))
        t0 = time.monotonic()
        cluster.stop_node(node)
        cluster.start_node(node)
        caught_up = wait_in_sync(admin, cluster_stage.replicas)
        steps.append({"node": node, "bounce_s": round(time.monotonic() - t0, 1),
                      "caught_up_s": round(caught_up, 1)})  # fmt: skip
    finish(dep, feeder, began, "cluster-rolling-restart", {"restarts": steps})
