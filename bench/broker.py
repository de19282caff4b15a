"""The broker side of the benchmarks: a local broker of their own (`producer_sim.cluster`),
topics, filling a topic, and reading back what the workers wrote (offsets committed, output
timestamps)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from producer_sim.cluster.broker import LocalBroker
from producer_sim.cluster.ports import free_port_pair

# How the product's simulator produces: batches of 20 ms, lz4.
INPUT_PRODUCER = {"partitioner": "murmur2_random", "linger.ms": 20, "compression.type": "lz4"}


# Answers while a group's coordinator is elected or loads its state: ask again.
_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
    }
)


@contextmanager
def local_broker(run_dir: Path) -> Iterator[str]:
    """A single-node broker of our own on free ports, stopped on exit."""
    port = free_port_pair()
    # KAFKA_START_TIMEOUT as the environment has it (the script's 90 s by default).
    broker = LocalBroker(run_dir, port, port + 1, start_timeout_s=None)
    try:
        yield broker.start()
    finally:
        broker.stop()


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


class Topics:
    """Creates uuid-named topics and deletes every one it created (and any named to it)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.created: list[str] = []

    def create(self, prefix: str, partitions: int, config: Mapping[str, str] | None = None) -> str:
        name = unique(prefix)
        self.create_named(name, partitions, config)
        return name

    def create_named(
        self, name: str, partitions: int, config: Mapping[str, str] | None = None
    ) -> None:
        topic = NewTopic(name, num_partitions=partitions, config=dict(config or {}))
        self.admin.create_topics([topic])[name].result(30)
        self.created.append(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = self.admin.list_topics(topic=name, timeout=5).topics.get(name)
            parts = meta.partitions.values() if meta is not None and meta.error is None else []
            if len(parts) == partitions and all(p.leader >= 0 for p in parts):
                return
            time.sleep(0.1)
        raise TimeoutError(f"topic {name} has no leader for every partition")

    def forget(self, names: Iterable[str]) -> None:
        """Also delete these at cleanup (topics a worker created)."""
        self.created += list(names)

    def delete_all(self) -> None:
        existing = set(self.admin.list_topics(timeout=10).topics)
        names = [n for n in dict.fromkeys(self.created) if n in existing]
        if names:
            for future in self.admin.delete_topics(names, operation_timeout=30).values():
                future.result(60)
        self.created.clear()


def fill(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    *,
    partition: int = -1,
    settings: Mapping[str, object] = INPUT_PRODUCER,
) -> int:
    """Produce (key, value) records as fast as the broker takes them; nothing is dropped."""
    producer = Producer({"bootstrap.servers": bootstrap, **settings})
    n = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, partition)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    if producer.flush(120) != 0:
        raise RuntimeError(f"records to {topic} not delivered within 120 s")
    return n


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe")})
    try:
        return {
            p: int(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in range(partitions)
        }
    finally:
        probe.close()


def wait_committed(
    bootstrap: str,
    group: str,
    topic: str,
    ends: Mapping[int, int],
    *,
    timeout_s: float,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Until the group has committed every partition up to `ends` (everything is processed);
    `check` runs at every poll and raises when waiting is pointless (a process died)."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        deadline = time.monotonic() + timeout_s
        committed: dict[int, int] = {}
        while True:
            check()
            try:
                committed = {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}
            except KafkaException as exc:
                err = exc.args[0]
                if not (err.retriable() or err.code() in _COORDINATOR_NOT_READY):
                    raise
            if committed and all(committed[p] >= end for p, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} committed {committed}, expected {dict(ends)}")
            time.sleep(0.25)
    finally:
        probe.close()


def output_timestamps(bootstrap: str, topic: str, partitions: int) -> np.ndarray:
    """The Kafka timestamps (ms; the writer's clock at produce time) of every committed record."""
    ends = end_offsets(bootstrap, topic, partitions)
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    stamps: list[int] = []
    try:
        live = {p for p, end in ends.items() if end > 0}
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in live])
        while live:
            for msg in reader.consume(10_000, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(str(err))
                    live.discard(msg.partition())
                    continue
                stamps.append(msg.timestamp()[1])
    finally:
        reader.close()
    return np.sort(np.asarray(stamps, np.int64))
