"""Which errors are asked again: a broker away is; a refusal or a missing topic is not."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from consumer.broker_away import broker_away


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._DESTROY_BROKER,  # requests in flight to a broker that died
        KafkaError._TRANSPORT,
        KafkaError._UNKNOWN_PARTITION,  # its partitions, until the new leaders are known
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_CONTROLLER,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._WAIT_COORD,
        KafkaError.OFFSET_NOT_AVAILABLE,  # a new leader whose high watermark is catching up
    ],
)
def test_a_broker_away_is_asked_again(code: int) -> None:
    assert broker_away(KafkaError(code))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        # The start-up check reports a missing topic; it must not wait for it to appear.
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._FENCED,
        KafkaError.INVALID_CONFIG,
    ],
)
def test_a_refusal_is_not_asked_again(code: int) -> None:
    assert not broker_away(KafkaError(code))
