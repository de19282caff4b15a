"""The sink: which delivery reports stop a commit."""

from __future__ import annotations

from typing import cast

import pytest
from confluent_kafka import KafkaError, Message, Producer

from consumer.sink import DeliveryFailedError, Sink
from tests.unit.kafka_fakes import FakeMessage

MSG = cast(Message, FakeMessage(b"k", b"v", partition=0, offset=-1, topic="probabilities"))


def test_records_purged_by_an_abort_are_not_delivery_failures() -> None:
    sink = Sink()
    sink.on_delivery(KafkaError(KafkaError._PURGE_INFLIGHT), MSG)
    sink.on_delivery(KafkaError(KafkaError._PURGE_QUEUE), MSG)
    sink.raise_failures()  # nothing to raise
    assert sink.purged == 2


def test_an_undelivered_record_is_raised_once() -> None:
    sink = Sink()
    sink.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), MSG)
    with pytest.raises(DeliveryFailedError, match=r"1 record\(s\) not delivered: probabilities"):
        sink.raise_failures()
    sink.raise_failures()


class _FullQueue:
    """A producer whose queue is full for the first `full` produce calls."""

    def __init__(self, full: int, left_after_flush: int = 0) -> None:
        self.full = full
        self.left = left_after_flush
        self.produced: list[tuple[str, bytes | None]] = []
        self.polls = 0

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int,
                **_: object) -> None:  # fmt: skip
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.produced.append((topic, value))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        return self.left

    def __len__(self) -> int:
        return 0


def test_a_full_queue_is_backpressure_never_a_dropped_record() -> None:
    sink = Sink()
    producer = _FullQueue(full=3)
    sink.attach(cast(Producer, producer))
    sink.send("probabilities", b"v", b"k")
    assert producer.produced == [("probabilities", b"v")]
    assert sink.backpressure_waits == 3 and producer.polls == 3


def test_a_flush_that_leaves_records_undelivered_stops_the_commit() -> None:
    sink = Sink()
    sink.attach(cast(Producer, _FullQueue(full=0, left_after_flush=2)))
    with pytest.raises(DeliveryFailedError, match=r"2 record\(s\) still undelivered"):
        sink.flush(0.1)


def test_a_new_producer_starts_with_no_failures_of_the_old_one() -> None:
    sink = Sink()
    sink.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), MSG)
    sink.attach(cast(Producer, _FullQueue(full=0)))
    sink.raise_failures()  # the old producer's failure went with it


def test_sending_without_a_producer_says_so() -> None:
    with pytest.raises(RuntimeError, match="no producer attached"):
        Sink().send("t", b"v", b"k")
