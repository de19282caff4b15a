"""The sink: which delivery reports stop a commit."""

from __future__ import annotations

from typing import cast

import pytest
from confluent_kafka import KafkaError, Message

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
