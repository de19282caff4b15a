"""Helpers for the scenarios told in phases (input, a fault, more input): one sample per record
for many keys, fed at once and remembered as it lies in the topic; records written to a chosen
partition; the newest changelog record of every key."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import orjson
from confluent_kafka import KafkaError, Message, Producer

from tests.reliability.accounting import Sent
from tests.reliability.feeder import Feeder, Raw
from tests.reliability.stage import Deployment, read_topic


def keys(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(n)]


def samples(
    rng: np.random.Generator, names: Sequence[bytes], steps: int, *, end: bool = False
) -> list[Raw]:
    """`steps` rounds of one sample per key (every key's k-th sample before any (k+1)-th), the
    last sample of each key carrying `end` if asked."""
    rows = rng.normal(0, 1, (steps, len(names), 3)).round(4).tolist()
    out: list[Raw] = []
    for k in range(steps):
        for i, key in enumerate(names):
            doc: dict[str, object] = {"features": rows[k][i]}
            if end and k == steps - 1:
                doc["end"] = True
            out.append((key, orjson.dumps(doc)))
    return out


def feed(dep: Deployment, records: Sequence[Raw]) -> list[Sent]:
    """Produce as fast as possible (default partitioner); the records as they lie in the topic."""
    feeder = Feeder(dep.bootstrap, dep.input, records)
    feeder.start()
    return feeder.result()


def produce_to(
    dep: Deployment, records: Sequence[tuple[bytes | None, bytes | None, int]]
) -> list[Sent]:
    """Produce each (key, value, partition) to that partition, whatever the key's hash says."""
    producer = Producer({"bootstrap.servers": dep.bootstrap, "enable.idempotence": True})
    where: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered_at(i: int) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))
                return
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            where[i] = (partition, offset)

        return delivered

    for i, (key, value, partition) in enumerate(records):
        producer.produce(dep.input, value, key, partition=partition, on_delivery=delivered_at(i))
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors[:5]
    out: list[Sent] = []
    for (key, value, _), at in zip(records, where, strict=True):
        assert at is not None
        out.append(Sent(key, value, *at))
    return out


def newest_changelog(dep: Deployment) -> dict[bytes, bytes | None]:
    """What a restore would find: every key's newest changelog record (None: a tombstone)."""
    newest: dict[bytes, bytes | None] = {}
    for msg in read_topic(dep.bootstrap, dep.changelog, _partitions(dep), "read_committed"):
        key = msg.key()
        if key is not None:
            newest[bytes(key)] = msg.value()
    return newest


def _partitions(dep: Deployment) -> int:
    meta = dep.stage.admin.list_topics(dep.changelog, timeout=10).topics[dep.changelog]
    return len(meta.partitions)
