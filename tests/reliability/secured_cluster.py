"""The three-broker cluster's side of a scenario: who leads a partition, waiting until every
replica is back in sync, and workers that connect over mutual TLS as a principal holding exactly
the ACLs `consumer.access_rights.acl_bindings` gives (or fewer, to be refused)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding

from consumer.access_rights import acl_bindings
from consumer.config import build_settings
from producer_sim.cluster.broker_cluster import LocalCluster
from tests.reliability.stage import Deployment, Stage

WORKER_PRINCIPAL = "scorer"


def tls_env(cert_dir: Path, name: str) -> dict[str, str]:
    """The KAFKA_* pass-through a worker needs to connect as User:`name`."""
    return {
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CA_LOCATION": str(cert_dir / "ca.pem"),
        "KAFKA_SSL_CERTIFICATE_LOCATION": str(cert_dir / f"{name}.crt"),
        "KAFKA_SSL_KEY_LOCATION": str(cert_dir / f"{name}.key"),
    }


def worker_acls(dep: Deployment, name: str) -> list[AclBinding]:
    """Exactly the rights the deployment's workers need, for User:`name`."""
    settings = build_settings([*dep.fleet.args, "--instance-id", "any"], {})
    return acl_bindings(settings, f"User:{name}")


def grant(admin: AdminClient, bindings: Iterable[AclBinding], timeout_s: float = 30.0) -> None:
    wanted = list(bindings)
    if not wanted:
        return
    for future in admin.create_acls(wanted, request_timeout=timeout_s).values():
        future.result(timeout_s)
    # ACLs reach every broker through the metadata log: a moment after the controller has them.
    time.sleep(1.0)


def secure_workers(dep: Deployment, cluster: LocalCluster, name: str = WORKER_PRINCIPAL) -> None:
    """The deployment's workers connect over TLS as User:`name`, granted exactly their rights."""
    dep.fleet.args[dep.fleet.args.index("--bootstrap-servers") + 1] = cluster.tls_bootstrap
    dep.fleet.env.update(tls_env(cluster.client_cert(name), name))
    grant(dep.stage.admin, worker_acls(dep, name))


def heal(stage: Stage) -> None:
    """Every node running and every replica in sync again, whatever a scenario left behind: a
    node it killed and did not get to start again must not fail the scenarios after it."""
    cluster = stage.broker
    assert isinstance(cluster, LocalCluster)
    cluster.start()  # starts the nodes that are down; the others only say they run
    wait_in_sync(stage.admin, stage.replicas)


def describe_partition(admin: AdminClient, topic: str, partition: int = 0) -> str:
    part = admin.list_topics(topic, timeout=10).topics[topic].partitions[partition]
    return f"{topic}[{partition}] leader {part.leader}, replicas {part.replicas}, isr {part.isrs}"


def leader_of(admin: AdminClient, topic: str, partition: int = 0, timeout_s: float = 60) -> int:
    """The node that leads the partition now (-1: none). A metadata request sent to a node
    that just died times out: asked again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            meta = admin.list_topics(topic, timeout=5).topics[topic]
            return int(meta.partitions[partition].leader)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_in_sync(admin: AdminClient, replicas: int, timeout_s: float = 180.0) -> float:
    """Until every partition of every topic has a leader and all its replicas in sync (a node
    that came back has caught up); the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            meta = admin.list_topics(timeout=10)
            topics = meta.topics
            lagging = [] if len(meta.brokers) >= replicas else [f"brokers {sorted(meta.brokers)}"]
            lagging += [
                f"{name}[{p}]"
                for name, meta in topics.items()
                for p, part in meta.partitions.items()
                if part.leader < 0 or len(part.isrs) < min(replicas, len(part.replicas))
            ]
        except KafkaException as exc:  # a node is restarting: ask again
            lagging = [str(exc)]
        if not lagging:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"replicas not in sync after {timeout_s} s: {lagging[:5]}")
        time.sleep(0.5)
