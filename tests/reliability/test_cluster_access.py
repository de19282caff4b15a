"""Scenario 13: mutual TLS and ACLs on three brokers. Workers whose principal holds exactly the
rights `consumer.access_rights.acl_bindings` grants score every sample as Keras does on every
prefix; principals short of one right each are refused at start-up (exit 3) with a message naming
the missing right, and write nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin._acl import AclBinding, AclOperation
from confluent_kafka.admin._resource import ResourceType

from producer_sim.cluster.broker_cluster import LocalCluster
from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder
from tests.reliability.fleet import Fleet
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.secured_cluster import grant, tls_env, worker_acls
from tests.reliability.stage import PARTITIONS, Deployment, Stage
from tests.reliability.test_hard_kills import stream

WORKERS = ("w0", "w1")
REFUSAL_BOUND_S = 120.0  # model loading included


def lacking(dep: Deployment, name: str, missing: Callable[[AclBinding], bool]) -> list[AclBinding]:
    """The worker's rights for User:`name`, without those `missing` picks."""
    return [b for b in worker_acls(dep, name) if not missing(b)]


def refused_principals(dep: Deployment) -> dict[str, tuple[list[AclBinding], str]]:
    """Principals one right short (or with none), and the words their refusal must contain."""
    changelog = dep.changelog
    cases: dict[str, tuple[list[AclBinding], str]] = {
        "nobody": ([], f"READ on topic {dep.input!r}"),
        "no-dlq-write": (
            lacking(dep, "no-dlq-write", lambda b: b.name == dep.dlq),
            f"WRITE on topic {dep.dlq!r}",
        ),
        "no-group": (
            lacking(dep, "no-group", lambda b: b.restype == ResourceType.GROUP),
            f"READ on group {dep.group!r}",
        ),
        "no-create": (
            lacking(dep, "no-create", lambda b: b.operation == AclOperation.CREATE),
            f"could not create topic {changelog!r}: the worker's principal lacks CREATE",
        ),
    }
    if dep.guarantee == "exactly-once":
        cases["no-txn"] = (
            lacking(dep, "no-txn", lambda b: b.restype == ResourceType.TRANSACTIONAL_ID),
            f"WRITE on transactional id '{dep.group}-no-txn'",
        )
    return cases


def ends(dep: Deployment, topic: str, partitions: int) -> list[int]:
    probe = Consumer({"bootstrap.servers": dep.bootstrap, "group.id": dep.group + "-probe"})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
    finally:
        probe.close()


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_exact_rights_serve_and_one_right_short_is_refused(
    guarantee: str, cluster_stage: Stage, cluster_deployment: DeploymentFactory, tmp_path: Path
) -> None:
    cluster = cluster_stage.broker
    assert isinstance(cluster, LocalCluster)
    dep = cluster_deployment(guarantee=guarantee)
    started = time.monotonic()
    cases = refused_principals(dep)
    refused: dict[str, tuple[Fleet, str]] = {}
    for name, (bindings, words) in cases.items():
        grant(cluster_stage.admin, bindings)
        fleet = Fleet(list(dep.fleet.args), tmp_path, tls_env(cluster.client_cert(name), name))
        fleet.start(name)
        refused[name] = (fleet, words)
    exits: dict[str, int] = {}
    for name, (fleet, words) in refused.items():
        proc = fleet.launches[0].worker.proc
        assert proc is not None
        exits[name] = proc.wait(REFUSAL_BOUND_S)
        log = fleet.launches[0].worker.log_path.read_text()
        assert exits[name] == 3, f"{name} exited {exits[name]}:\n{log[-3000:]}"
        assert words in log, f"{name}'s refusal does not say {words!r}:\n{log[-3000:]}"
    # Refused before anything was written: no output, no dead letter, no changelog.
    assert ends(dep, dep.output, PARTITIONS) == [0] * PARTITIONS
    assert ends(dep, dep.dlq, 1) == [0]
    assert dep.changelog not in cluster_stage.admin.list_topics(timeout=10).topics

    for slot in WORKERS:
        dep.fleet.start(slot)
    dep.fleet.wait_ready(len(WORKERS))
    rng = np.random.default_rng(1300 if guarantee == "exactly-once" else 1301)
    records = stream(rng, 500, 20, "acl")
    feeder = Feeder(dep.bootstrap, dep.input, records)
    feeder.start()
    expected = expect(feeder.result(), cluster_stage.model, workdir=tmp_path, keras=True)
    changelog = cluster_stage.admin.list_topics(dep.changelog, timeout=10).topics[dep.changelog]
    replicas = {len(p.replicas) for p in changelog.partitions.values()}
    summary = conclude(
        dep,
        scenario="cluster-access",
        expected=expected,
        started=started,
        drain_timeout_s=300,
        details={
            "brokers": cluster.brokers,
            "listener": "SSL (mutual TLS), ACLs",
            "refused": exits,
            "changelog_replicas": sorted(replicas),
        },
    )
    assert_clean(summary)
    assert replicas == {3}
