"""The broker the reliability scenarios run against, and one scenario's deployment on it.

Unlike the integration tests, these scenarios stop and start their broker, so they always start
their own (even when KAFKA_BOOTSTRAP_SERVERS names a cluster), with a SASL/SCRAM listener next to
the plaintext one for the security scenario.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from producer_sim.cluster.broker import LocalBroker
from producer_sim.cluster.broker_cluster import LocalCluster
from tests.kafka_harness import (
    create_topic,
    delete_topics,
    lag_zero,
    unique_name,
)
from tests.reliability.fleet import Fleet
from tests.reliability.profile import Profile

PARTITIONS = 6
SCRAM_MECHANISM = "SCRAM-SHA-256"


@dataclass(frozen=True)
class SaslBroker(LocalBroker):
    """A LocalBroker that also listens for SASL_PLAINTEXT/SCRAM clients on `sasl_port`."""

    sasl_port: int = 0
    sasl_user: str = "scorer"
    sasl_password: str = ""

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(
            KAFKA_SASL_PORT=str(self.sasl_port),
            KAFKA_SASL_USER=self.sasl_user,
            KAFKA_SASL_PASSWORD=self.sasl_password,
        )
        return env


@dataclass
class Stage:
    """Session-wide: the broker (or the three-broker cluster), the model, the mode and where
    summaries go."""

    broker: SaslBroker | LocalCluster
    model: Path
    profile: Profile
    results: Path
    admin: AdminClient = field(init=False)

    @property
    def replicas(self) -> int:
        """Of each topic a scenario creates: as many as the cluster has brokers, up to 3."""
        return min(3, self.broker.brokers) if isinstance(self.broker, LocalCluster) else 1

    def __post_init__(self) -> None:
        self.admin = AdminClient({"bootstrap.servers": self.broker.bootstrap})

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap


@dataclass
class Deployment:
    """One scenario's topics, consumer group and workers."""

    stage: Stage
    workdir: Path
    guarantee: str = "at-least-once"
    extra_args: tuple[str, ...] = ()
    worker_bootstrap: str = ""  # where the workers connect, if not the plaintext listener
    bootstrap: str = ""
    input: str = ""
    output: str = ""
    dlq: str = ""
    group: str = ""
    fleet: Fleet = field(init=False)

    def __post_init__(self) -> None:
        admin = self.stage.admin
        self.bootstrap = self.bootstrap or self.stage.bootstrap
        replicas = self.stage.replicas
        self.input = create_topic(admin, PARTITIONS, replicas=replicas)
        self.output = create_topic(admin, PARTITIONS, replicas=replicas)
        self.dlq = create_topic(admin, 1, replicas=replicas)
        self.group = unique_name("rel-group")
        args = [
            "--bootstrap-servers", self.worker_bootstrap or self.bootstrap,
            "--input-topic", self.input,
            "--output-topic", self.output,
            "--dlq-topic", self.dlq,
            "--group-id", self.group,
            "--model", str(self.stage.model),
            "--guarantee", self.guarantee,
            "--create-topics",
            "--metrics-addr", "127.0.0.1",
            "--log-format", "json",
            "--commit-interval-ms", "500",
            *self.extra_args,
        ]  # fmt: skip
        self.fleet = Fleet(args, self.workdir)

    @property
    def changelog(self) -> str:
        return f"{self.group}-state-changelog"

    @property
    def isolation(self) -> str:
        return "read_committed" if self.guarantee == "exactly-once" else "read_uncommitted"

    def teardown(self) -> None:
        self.fleet.cleanup()
        names = [self.input, self.output, self.dlq, self.changelog]
        existing = set(self.stage.admin.list_topics(timeout=30).topics)
        delete_topics(self.stage.admin, [n for n in names if n in existing])

    def input_ends(self, probe: Consumer | None = None) -> list[int]:
        """The input topic's high watermark per partition."""
        own = probe is None
        client = probe or Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        try:
            return [
                client.get_watermark_offsets(TopicPartition(self.input, p), timeout=10)[1]
                for p in range(PARTITIONS)
            ]
        finally:
            if own:
                client.close()

    def wait_drained(self, timeout_s: float, what: str = "the input to be committed") -> float:
        """Until the group's committed offsets reach the end of the input topic; seconds taken.

        A worker commits input offsets only after the outputs and dead letters of those records
        are delivered (or, exactly-once, in the same transaction), so after this the output and
        dead-letter topics are complete."""
        started = time.monotonic()
        probe = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group})
        tps = [TopicPartition(self.input, p) for p in range(PARTITIONS)]
        try:
            while True:
                try:
                    ends = self.input_ends(probe)
                    done = probe.committed(tps, timeout=10)
                    if all(c.offset >= end for c, end in zip(done, ends, strict=True)):
                        return time.monotonic() - started
                except KafkaException:
                    pass  # the broker may be restarting; ask again
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
                if not self.fleet.alive():
                    raise AssertionError(f"no worker alive while waiting for {what}")
                time.sleep(0.5)
        finally:
            probe.close()

    def lag_zero(self) -> bool:
        """Whether the group has committed the whole input."""
        return lag_zero(self.bootstrap, self.group, self.input, PARTITIONS)

    def read(self, topic: str, partitions: int = PARTITIONS) -> list[Message]:
        return read_topic(self.bootstrap, topic, partitions, self.isolation)


def read_topic(
    bootstrap: str, topic: str, partitions: int, isolation: str = "read_committed"
) -> list[Message]:
    """Every record of a topic, from the beginning to its current end."""
    out: list[Message] = []
    for_each_record(bootstrap, topic, partitions, isolation, out.append)
    return out


def for_each_record(
    bootstrap: str,
    topic: str,
    partitions: int,
    isolation: str,
    handle: Callable[[Message], object],
) -> None:
    """`handle` every record of a topic, from the beginning to its current end, keeping none
    (millions of Message objects do not fit in memory)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("rel-reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = time.monotonic() + 600
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for msg in consumer.consume(10_000, timeout=1.0):
                err = msg.error()
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None
                if err is None:
                    handle(msg)
                    if offset + 1 >= ends[partition]:
                        pending.discard(partition)
                elif err.code() == KafkaError._PARTITION_EOF:
                    if offset >= ends[partition]:
                        pending.discard(partition)
                else:
                    raise KafkaException(err)
    finally:
        consumer.close()
