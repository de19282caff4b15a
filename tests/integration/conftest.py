"""Integration fixtures: a real broker for the whole session, topics and groups per test.

With KAFKA_BOOTSTRAP_SERVERS set, tests use that cluster. Otherwise the session starts its own
broker with deploy/kafka/local-kafka.sh, in a temporary run directory on KAFKA_PORT (default
19092, away from a developer's broker on 9092; another free pair if that one is taken), and stops
it when the session ends, whether the tests passed or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from producer_sim.cluster.broker import LocalBroker, started_on_free_ports
from tests.kafka_harness import NewTopicFactory, create_topic, delete_topics, unique_name

_HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: the marker must be on the items before `-m "not integration"` deselects by it.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker | None]:
    """The broker this session started, or None when KAFKA_BOOTSTRAP_SERVERS names a cluster."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    env_port = os.environ.get("KAFKA_PORT")
    if env_port:
        port = int(env_port)
        controller_port = int(os.environ.get("KAFKA_CONTROLLER_PORT", port + 1))
        broker = LocalBroker(tmp_path_factory.mktemp("kafka"), port, controller_port)
        try:
            broker.start()
        except RuntimeError:
            broker.stop()  # it may have failed half-way
            raise
    else:
        broker = started_on_free_ports(
            lambda port: LocalBroker(tmp_path_factory.mktemp("kafka"), port, port + 1), 19092
        )
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_broker: LocalBroker | None) -> str:
    if local_broker is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    return local_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def new_topic(kafka_admin: AdminClient) -> Iterator[NewTopicFactory]:
    """`new_topic(partitions, config=None)` -> the name of a fresh, ready topic.

    Topics are deleted after the test so a shared cluster does not fill up.
    """
    created: list[str] = []

    def make(partitions: int, config: Mapping[str, str] | None = None) -> str:
        name = create_topic(kafka_admin, partitions, config)
        created.append(name)
        return name

    yield make
    delete_topics(kafka_admin, created)


@pytest.fixture
def unique_group() -> Callable[[], str]:
    """`unique_group()` -> a consumer group id no other test uses."""
    return lambda: unique_name("test-group")
