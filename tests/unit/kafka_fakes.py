"""Broker-free stand-ins for the Kafka clients the runner uses, recording what it asks of them.

They do what the runner relies on and no more: a consumer that hands out scripted batches and
calls the rebalance callbacks as librdkafka does (close revokes the assignment first), a producer
with transactions that reports purged records to the delivery callback when a transaction is
aborted, and a changelog reader serving records per partition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from consumer import runner
from consumer.config import Guarantee, Settings
from consumer.departed_writers import DepartedWriters
from consumer.http_endpoints import Health
from consumer.kafka_clients import CommitAnswers, KafkaClients
from consumer.metrics import Metrics
from tests.prefix_sum_step import PrefixSumStep

INPUT = "samples"
CHANGELOG = "lstm-scorer-state-changelog"
OUTPUT = "probabilities"


class FakeMessage(Message):
    """A real client message, built by hand (the code reads messages through the client's own
    methods, some as unbound descriptors, which only the real type has)."""

    def __init__(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None,
        offset: int | None,
        topic: str = INPUT,
        error: KafkaError | None = None,
    ) -> None:
        # The client's None for "no partition" or "no offset" is its -1 and -1001.
        super().__init__(
            topic=topic,
            partition=-1 if partition is None else partition,
            offset=-1001 if offset is None else offset,
            key=key,
            value=value,
            error=error,
            timestamp=(1, 1_764_150_000_000),
        )


def sample(key: str, partition: int, offset: int, extra: str = "") -> FakeMessage:
    value = b'{"features":[1,2,3]' + extra.encode() + b"}"
    return FakeMessage(key.encode(), value, partition=partition, offset=offset)


@dataclass
class Produced:
    topic: str
    value: bytes | None
    key: bytes | None
    partition: int


class FakeProducer:
    """Records every produce; exactly-once, it keeps the open transaction's records and, like
    librdkafka, reports them purged (`_PURGE_INFLIGHT`) on the next poll after an abort."""

    def __init__(self, on_delivery: Callable[[KafkaError | None, Any], None]) -> None:
        self.on_delivery = on_delivery
        self.produced: list[Produced] = []
        self.calls: list[str] = []
        self.in_transaction: list[Produced] = []
        self.committed: list[Produced] = []
        self.purged: list[Produced] = []
        self.sent_offsets: list[list[tuple[int, int]]] = []
        # Failures to inject: raised once by send_offsets_to_transaction; by every produce; by
        # abort and flush (a producer in a fatal state refuses everything).
        self.fail_send_offsets: Exception | None = None
        self.fail_produce: Exception | None = None
        self.fail_abort: Exception | None = None
        self.fail_poll: Exception | None = None  # raised once by poll
        self.stuck = threading.Event()  # set: send_offsets_to_transaction waits for `release`
        self.release = threading.Event()

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                **_: object) -> None:  # fmt: skip
        if self.fail_produce is not None:
            raise self.fail_produce
        record = Produced(topic, value, key, partition)
        self.produced.append(record)
        self.in_transaction.append(record)

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], meta: object,
                                    timeout: float) -> None:  # fmt: skip
        self.calls.append("send_offsets")
        if self.stuck.is_set():
            self.release.wait()
        self.sent_offsets.append([(tp.partition, tp.offset) for tp in offsets])
        if self.fail_send_offsets is not None:
            exc, self.fail_send_offsets = self.fail_send_offsets, None
            raise exc

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        self.committed += self.in_transaction
        self.in_transaction = []

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")
        if self.fail_abort is not None:
            raise self.fail_abort
        self.purged += self.in_transaction
        self.in_transaction = []

    def poll(self, timeout: float = 0) -> int:
        if self.fail_poll is not None:
            exc, self.fail_poll = self.fail_poll, None
            raise exc
        purged, self.purged = self.purged, []
        for record in purged:
            msg = FakeMessage(record.key, record.value, partition=record.partition, offset=-1,
                              topic=record.topic)  # fmt: skip
            self.on_delivery(KafkaError(KafkaError._PURGE_INFLIGHT), msg)
        return len(purged)

    def flush(self, timeout: float = 0) -> int:
        if self.fail_abort is not None:
            raise self.fail_abort
        self.poll(0)
        self.committed += self.in_transaction  # at-least-once: everything is delivered
        self.in_transaction = []
        return 0

    def __len__(self) -> int:
        return 0


@dataclass
class FakeConsumer:
    """The group consumer: `batches` are handed out by consume() one per call (then nothing)."""

    batches: list[list[FakeMessage]] = field(default_factory=list)
    on_error: Callable[[KafkaError], None] | None = None
    callbacks: dict[str, Callable[..., None]] = field(default_factory=dict)
    assignment: set[int] = field(default_factory=set)
    paused: set[int] = field(default_factory=set)
    held: list[FakeMessage] = field(default_factory=list)
    commits: list[list[tuple[int, int]]] = field(default_factory=list)
    seeks: list[tuple[int, int]] = field(default_factory=list)
    ops: list[tuple[str, int]] = field(default_factory=list)  # pause, resume, seek, in order
    consumed: int = 0  # consume() calls
    timeouts: list[float] = field(default_factory=list)  # of each consume() call
    closed: bool = False
    before_consume: Callable[[FakeConsumer], None] | None = None
    on_commit: CommitAnswers | None = None
    # Answers to commits, served at the next consume() as librdkafka serves them; `commit_error`
    # makes them failures (and a synchronous commit raise it).
    unanswered: list[list[TopicPartition]] = field(default_factory=list)
    commit_error: KafkaError | None = None

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.callbacks = callbacks

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.consumed += 1
        self.timeouts.append(timeout)
        self.answer_commits()
        if self.before_consume is not None:
            self.before_consume(self)
        # Records of paused partitions wait for their resume; the others flow.
        batch = [*self.held, *(self.batches.pop(0) if self.batches else [])]
        self.held = [m for m in batch if m.partition() in self.paused]
        return [m for m in batch if m.partition() not in self.paused]

    def assign_now(self, *partitions: int) -> None:
        """A rebalance that assigns these partitions, as librdkafka runs it inside consume()."""
        self.callbacks["on_assign"](self, [TopicPartition(INPUT, p) for p in partitions])
        self.assignment.update(partitions)

    def revoke_now(self, *partitions: int) -> None:
        self.callbacks["on_revoke"](self, [TopicPartition(INPUT, p) for p in partitions])
        self.assignment.difference_update(partitions)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assignment.update(tp.partition for tp in partitions)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in partitions)
        self.ops += [("pause", tp.partition) for tp in partitions]

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update(tp.partition for tp in partitions)
        self.ops += [("resume", tp.partition) for tp in partitions]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])
        # librdkafka serves every commit's answer to on_commit, a synchronous one's as well.
        self.unanswered.append(offsets)
        if not asynchronous and self.commit_error is not None:
            raise KafkaException(self.commit_error)

    def answer_commits(self) -> None:
        """The broker's answers to the asynchronous commits so far, to `on_commit`."""
        answers, self.unanswered = self.unanswered, []
        for offsets in answers:
            if self.on_commit is not None:
                self.on_commit(self.commit_error, offsets)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))
        self.ops.append(("seek", tp.partition))

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, **_: object) -> tuple[int, int]:
        return 0, 0

    def consumer_group_metadata(self) -> object:
        return object()

    def close(self) -> None:
        if self.assignment and "on_revoke" in self.callbacks:
            self.revoke_now(*sorted(self.assignment))
        self.closed = True


@dataclass
class FakeReader:
    """The changelog reader: `records[p]` is changelog partition p, as (key, value) pairs."""

    records: dict[int, list[tuple[bytes | None, bytes | None]]] = field(default_factory=dict)
    assigned: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    consumed: int = 0
    per_consume: int = 10_000

    def get_watermark_offsets(self, tp: TopicPartition, **_: object) -> tuple[int, int]:
        return 0, len(self.records.get(tp.partition, []))

    def list_topics(self, topic: str, timeout: float) -> object:
        return object()  # a metadata refresh: the fake's leaders never move

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = {tp.partition: max(0, tp.offset) for tp in partitions}

    def unassign(self) -> None:
        self.assigned = {}

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.consumed += 1
        out: list[FakeMessage] = []
        for p, start in sorted(self.assigned.items()):
            records = self.records.get(p, [])
            at = start
            while at < len(records) and len(out) < min(num_messages, self.per_consume):
                key, value = records[at]
                out.append(FakeMessage(key, value, partition=p, offset=at, topic=CHANGELOG))
                at += 1
            self.assigned[p] = at
        return out

    def close(self) -> None:
        pass


@dataclass
class FakeClients:
    """What the runner is handed instead of `consumer.kafka_clients.KafkaClients`."""

    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    reader: FakeReader = field(default_factory=FakeReader)
    producers: list[FakeProducer] = field(default_factory=list)
    consumers_made: int = 0
    # The group's static members as a lookup finds them, and the transactional ids fenced.
    members: set[str] = field(default_factory=set)
    fenced: list[str] = field(default_factory=list)
    own_instance: str = ""
    lookup_gate: threading.Event | None = None  # set: the group lookup waits for it

    def group_consumer(
        self,
        on_error: Callable[[KafkaError], None],
        on_commit: CommitAnswers,
    ) -> FakeConsumer:
        self.consumers_made += 1
        self.consumer.on_error = on_error
        self.consumer.on_commit = on_commit
        return self.consumer

    def changelog_reader(self) -> FakeReader:
        return self.reader

    def producer(self, _on_error: object, on_delivery: Any) -> FakeProducer:
        self.producers.append(FakeProducer(on_delivery))
        return self.producers[-1]

    def departed_writers(self) -> DepartedWriters:
        return DepartedWriters(
            self.own_instance, self._members, self.fenced.append, lambda i: f"g-{i}"
        )

    def _members(self) -> set[str]:
        if self.lookup_gate is not None:
            self.lookup_gate.wait(30)
        return set(self.members)


@dataclass
class Fakes:
    runner: runner.Runner
    clients: FakeClients

    @property
    def consumer(self) -> FakeConsumer:
        return self.clients.consumer

    @property
    def reader(self) -> FakeReader:
        return self.clients.reader

    @property
    def producers(self) -> list[FakeProducer]:
        return self.clients.producers

    @property
    def producer(self) -> FakeProducer:
        return self.producers[-1]

    def assign(self, *partitions: int) -> None:
        """Assign these partitions and let the runner restore them, as its loop would."""
        self.consumer.assign_now(*partitions)
        self.restore()

    def restore(self) -> None:
        """Run restore slices until no partition is left to restore."""
        while self.runner.restorer.pending:
            self.runner._restore_slice()


def make_runner(guarantee: Guarantee = "at-least-once", **settings: Any) -> Fakes:
    s = Settings(model_path=Path("m.keras"), guarantee=guarantee, **settings)
    clients = FakeClients(own_instance=s.instance_id)
    metrics = Metrics(CollectorRegistry())
    r = runner.Runner(s, PrefixSumStep(), metrics, Health(), cast(KafkaClients, clients))
    # As run() subscribes, for tests that drive the runner's steps themselves.
    clients.consumer.callbacks = {"on_assign": r._on_assign, "on_revoke": r._on_revoke,
                                  "on_lost": r._on_lost}  # fmt: skip
    return Fakes(r, clients)
