"""Client-side helpers for tests that talk to a real Kafka broker (the broker itself is
`producer_sim.cluster.broker`): uuid-named topics, group ids, bounded consumption, and the Java
client's murmur2 partitioner for checking where keys land.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

# The `new_topic` fixture: new_topic(partitions, config=None) -> topic name.
NewTopicFactory = Callable[..., str]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(
    admin: AdminClient,
    partitions: int,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    replicas: int = 1,
) -> str:
    """Create a uuid-named topic and return once every partition has a leader."""
    name = unique_name("test-topic")
    conf = {"min.insync.replicas": str(min(2, replicas)), **(config or {})}
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replicas, config=conf)]
    )
    futures[name].result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic=name, timeout=5.0).topics.get(name)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return name
    raise TimeoutError(f"topic {name} has no leader for every partition after {timeout_s} s")


def delete_topics(admin: AdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    if names:
        for future in admin.delete_topics(names, operation_timeout=timeout_s).values():
            future.result(timeout=timeout_s)


def _checked_message(msg: Message) -> Message | None:
    err = msg.error()
    if err is None:
        return msg
    if err.code() == KafkaError._PARTITION_EOF:
        return None
    raise KafkaException(err)


def consume_until(
    consumer: Consumer,
    done: Callable[[list[Message]], bool],
    timeout_s: float = 60.0,
    on_batch: Callable[[list[Message]], None] | None = None,
) -> list[Message]:
    """Poll until `done(received)` holds; `on_batch` runs after each non-empty batch."""
    received: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while not done(received):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"condition not met after {timeout_s} s ({len(received)} records)")
        batch = [
            m
            for m in (_checked_message(raw) for raw in consumer.consume(500, min(remaining, 1.0)))
            if m is not None
        ]
        if batch:
            received.extend(batch)
            if on_batch is not None:
                on_batch(batch)
    return received


def consume_n(
    consumer: Consumer,
    n: int,
    timeout_s: float = 60.0,
    on_batch: Callable[[list[Message]], None] | None = None,
) -> list[Message]:
    """Consume at least `n` records (a final batch may carry more) or raise TimeoutError."""
    return consume_until(consumer, lambda got: len(got) >= n, timeout_s, on_batch)


def reader(
    bootstrap: str, topic: str, partitions: int, isolation: str = "read_committed"
) -> Consumer:
    """A consumer assigned to every partition of `topic` from the beginning, outside any group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def high_watermarks(consumer: Consumer, topic: str, partitions: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in range(partitions):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
        out[p] = int(high)
    return out


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as seen by a fresh client (negative when none)."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = probe.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10.0)
        return {tp.partition: int(tp.offset) for tp in tps}
    finally:
        probe.close()


def murmur2(data: bytes) -> int:
    """Kafka's Java `Utils.murmur2`: MurmurHash2, seed 0x9747b28c, as a signed 32-bit int."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    tail_start = length - length % 4
    for i in range(0, tail_start, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[tail_start + 2] << 16
    if rest >= 2:
        h ^= data[tail_start + 1] << 8
    if rest >= 1:
        h ^= data[tail_start]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, num_partitions: int) -> int:
    """The partition the Java client's default partitioner picks for a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


@dataclass(frozen=True)
class Record:
    """The parts of a consumed or delivered message the tests look at, with plain types."""

    key: bytes
    value: bytes
    partition: int
    offset: int


def as_record(msg: Message) -> Record:
    key, value, partition, offset = msg.key(), msg.value(), msg.partition(), msg.offset()
    if key is None or value is None or partition is None or offset is None:
        raise AssertionError(f"incomplete record {key!r}={value!r} at {partition}/{offset}")
    return Record(bytes(key), bytes(value), partition, offset)


class QuietReader:
    """Reads every partition of a topic from the beginning and keeps what it read, until the topic
    is quiet: no new record for `quiet_s` while `settled()` holds (e.g. the group has committed
    the whole input). Not until an expected count, so late repeats and extra records are seen."""

    def __init__(
        self, bootstrap: str, topic: str, partitions: int, isolation: str = "read_committed"
    ) -> None:
        self.consumer = reader(bootstrap, topic, partitions, isolation)
        self.received: list[Message] = []
        # For readers of millions of records: each value is handed over and nothing is kept (a
        # Message object costs several times its value; the full overload reads 4.6 million).
        self.on_value: Callable[[bytes | None], None] | None = None
        self.count = 0

    def read_until_quiet(
        self,
        quiet_s: float,
        timeout_s: float,
        settled: Callable[[], bool] = lambda: True,
    ) -> list[Message]:
        """Everything read so far; raises TimeoutError (a drain timeout) if the topic is still
        not quiet after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_new >= quiet_s and settled():
                return self.received
            if now > deadline:
                raise TimeoutError(
                    f"{self.count} records read, still not quiet for {quiet_s} s "
                    f"after {timeout_s} s"
                )
            batch = [
                m
                for m in (_checked_message(raw) for raw in self.consumer.consume(1000, 0.5))
                if m is not None
            ]
            if batch:
                self.count += len(batch)
                if self.on_value is not None:
                    for m in batch:
                        self.on_value(m.value())
                else:
                    self.received.extend(batch)
                last_new = time.monotonic()

    def close(self) -> None:
        self.consumer.close()


def lag_zero(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """Whether the group's committed offsets have reached the end of every partition of `topic`."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        done = probe.committed(tps, timeout=10.0)
        for tp in done:
            high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10.0)[1]
            if high > 0 and tp.offset < high:
                return False
        return True
    except KafkaException:
        return False  # the broker may be restarting: not settled yet
    finally:
        probe.close()
