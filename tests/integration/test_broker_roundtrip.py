"""The broker and client behaviours the consumer service is built on, checked on a real broker.

- keyed records spread over partitions exactly as a Java producer would place them, and a group
  with manual commits reads each record once, in order per key;
- consume-transform-produce in a transaction: committed output and offsets become visible
  together; an aborted transaction is invisible to `read_committed` readers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, Message, Producer

from tests.kafka_harness import (
    NewTopicFactory,
    QuietReader,
    Record,
    as_record,
    committed_offsets,
    consume_n,
    high_watermarks,
    java_partition,
    unique_name,
)

PARTITIONS = 6

# Partitions computed by the Java client (kafka-clients 4.4.0:
# Utils.toPositive(Utils.murmur2(key)) % 6), so the pure-Python murmur2 is checked as well.
JAVA_PARTITION_OF_6 = {
    "key-0": 1,
    "key-7": 1,
    "key-42": 3,
    "key-499": 2,
    "dev-17": 2,
    "seq-42": 1,
    "sensor-0001": 4,
    "été-測試": 2,
}


class DeliveryLog:
    """Collects delivery reports; any failed delivery fails the test."""

    def __init__(self) -> None:
        self.delivered: list[Record] = []
        self.errors: list[KafkaError] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered.append(as_record(msg))


def test_keyed_records_arrive_once_on_the_java_partition(
    kafka_bootstrap: str, new_topic: NewTopicFactory, unique_group: Callable[[], str]
) -> None:
    topic = new_topic(PARTITIONS)
    keys = list(JAVA_PARTITION_OF_6) + [f"key-{i}" for i in range(500 - len(JAVA_PARTITION_OF_6))]
    keys = list(dict.fromkeys(keys))
    total = 10_000
    sent = [(keys[i % len(keys)], i) for i in range(total)]

    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    log = DeliveryLog()
    for key, seq in sent:
        producer.produce(topic, key=key.encode(), value=str(seq).encode(), on_delivery=log)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert log.errors == []
    assert len(log.delivered) == total

    group = unique_group()
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        # Commit only after a batch is processed (here: recorded), as the service does.
        received = [
            as_record(m)
            for m in consume_n(consumer, total, on_batch=lambda _: _commit_sync(consumer))
        ]
    finally:
        consumer.close()

    values = Counter(int(r.value) for r in received)
    assert len(received) == total
    assert values == Counter(range(total)), "some record was lost or duplicated"

    partitions_of: defaultdict[str, set[int]] = defaultdict(set)
    order_of: defaultdict[str, list[int]] = defaultdict(list)
    for r in received:
        key = r.key.decode()
        partitions_of[key].add(r.partition)
        order_of[key].append(int(r.value))
    assert set(partitions_of) == set(keys)
    assert all(len(parts) == 1 for parts in partitions_of.values())
    for key, parts in partitions_of.items():
        assert parts == {java_partition(key.encode(), PARTITIONS)}, key
    for key, expected in JAVA_PARTITION_OF_6.items():
        assert partitions_of[key] == {expected}, key
    assert all(seqs == sorted(seqs) for seqs in order_of.values()), "per-key order broken"

    # The manual commits reached the broker: the group is at the end of every partition.
    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_group()})
    try:
        ends = high_watermarks(probe, topic, PARTITIONS)
    finally:
        probe.close()
    assert sum(ends.values()) == total
    assert committed_offsets(kafka_bootstrap, group, topic, PARTITIONS) == ends


def _commit_sync(consumer: Consumer) -> None:
    consumer.commit(asynchronous=False)


def _values(messages: list[Message]) -> list[str]:
    return [as_record(m).value.decode() for m in messages]


def _read_until_marker(
    bootstrap: str, topic: str, partitions: int, isolation: str, marker: str
) -> list[str]:
    """Every record of the topic, read until it is quiet once the marker has shown: stopping at
    the marker missed the records of partitions the reader had not got to yet."""
    quiet = QuietReader(bootstrap, topic, partitions, isolation)
    try:
        got = quiet.read_until_quiet(2.0, 60.0, lambda: marker in _values(quiet.received))
    finally:
        quiet.consumer.close()
    return _values(got)


def test_transactional_consume_transform_produce(
    kafka_bootstrap: str, new_topic: NewTopicFactory, unique_group: Callable[[], str]
) -> None:
    source, sink = new_topic(3), new_topic(3)
    plain = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for i in range(30):
        plain.produce(source, key=f"k{i % 7}".encode(), value=f"in-{i}".encode())
    assert plain.flush(30) == 0

    group = unique_group()
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    tx = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": unique_name("tx"),
            "partitioner": "murmur2_random",
        }
    )
    tx.init_transactions(30)
    consumer.subscribe([source])

    def transform(batch: list[Message], prefix: str) -> None:
        for m in batch:
            r = as_record(m)
            tx.produce(sink, key=r.key, value=prefix.encode() + r.value)
        # Partitions this consumer has not read from yet have no position to commit.
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        tx.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)

    try:
        # Transaction 1: committed.
        batch = consume_n(consumer, 30)
        tx.begin_transaction()
        transform(batch, "out-")
        tx.commit_transaction(30)
        committed_after_first = committed_offsets(kafka_bootstrap, group, source, 3)

        # Transaction 2: aborted, after ten more inputs.
        for i in range(30, 40):
            plain.produce(source, key=f"k{i % 7}".encode(), value=f"in-{i}".encode())
        assert plain.flush(30) == 0
        batch = consume_n(consumer, 10)
        tx.begin_transaction()
        transform(batch, "aborted-")
        # In the log before the abort: abort_transaction purges records still queued, and the
        # reader that ignores transactions below would then have nothing to see.
        assert tx.flush(30) == 0
        tx.abort_transaction(30)

        # Transaction 3: a committed marker, so readers know they have read past the abort.
        tx.begin_transaction()
        tx.produce(sink, key=b"marker", value=b"marker")
        tx.commit_transaction(30)
    finally:
        consumer.close()

    committed_view = _read_until_marker(kafka_bootstrap, sink, 3, "read_committed", "marker")
    uncommitted_view = _read_until_marker(kafka_bootstrap, sink, 3, "read_uncommitted", "marker")

    expected = {f"out-in-{i}" for i in range(30)}
    assert set(committed_view) == expected | {"marker"}
    assert len(committed_view) == 31
    assert not [v for v in committed_view if v.startswith("aborted-")]
    # The aborted records are in the log: a reader that ignores transactions sees them.
    assert {v for v in uncommitted_view if v.startswith("aborted-")} == {
        f"aborted-in-{i}" for i in range(30, 40)
    }

    # Offsets moved with the committed transaction only, and not with the aborted one.
    assert sum(committed_after_first.values()) == 30
    assert committed_offsets(kafka_bootstrap, group, source, 3) == committed_after_first
    end_probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_group()})
    try:
        assert sum(high_watermarks(end_probe, source, 3).values()) == 40
    finally:
        end_probe.close()
