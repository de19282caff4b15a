"""Errors that mean a broker is away for a moment, and the metadata refresh that finds its
replacement. One list for the start-up checks, the restore and the group's committed offsets."""

from __future__ import annotations

import contextlib

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# The broker asked died (requests in flight time out or end with its handle, and its partitions
# are unknown until the new leaders are in the client's metadata), or the controller, a
# partition's leader or a group's coordinator is moving or loading.
BROKER_AWAY = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._DESTROY_BROKER,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_CONTROLLER,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        # A partition's new leader, just elected, whose high watermark has not caught up yet:
        # librdkafka does not count it retriable, but it passes within a moment.
        KafkaError.OFFSET_NOT_AVAILABLE,
    }
)


def broker_away(err: KafkaError) -> bool:
    """Whether asking again, once the client's metadata names the new broker, can succeed."""
    return bool(err.retriable()) or err.code() in BROKER_AWAY


def refresh_metadata(client: Consumer | AdminClient, topic: str | None = None) -> None:
    """Ask the brokers who leads what now. After a SIGKILL librdkafka keeps asking the dead
    broker (leader, controller) until its periodic metadata refresh, five minutes later; a
    metadata request updates it at once. A failure here is the same absence: the caller asks
    again."""
    with contextlib.suppress(KafkaException):
        if topic is None:
            client.list_topics(timeout=2.0)
        else:
            client.list_topics(topic, timeout=2.0)
