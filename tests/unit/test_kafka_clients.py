"""Client configurations: what the service sets itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer import kafka_clients
from consumer.config import Settings
from consumer.kafka_clients import consumer_config, producer_config


def _ignore(*_: object) -> None:
    pass


def test_the_instance_id_is_the_static_group_member_and_names_the_transactional_id() -> None:
    s = Settings(model_path=Path("m.keras"), guarantee="exactly-once", instance_id="pod-a")
    # A restart within the session timeout keeps the member's partitions: no rebalance.
    assert consumer_config(s, _ignore)["group.instance.id"] == "pod-a"
    assert producer_config(s, _ignore, _ignore)["transactional.id"] == "lstm-scorer-pod-a"


# -- start-up topic checks against an admin client that lags or refuses --------------------


def _metadata(topics: Mapping[str, int]) -> SimpleNamespace:
    return SimpleNamespace(
        topics={
            name: SimpleNamespace(partitions=dict.fromkeys(range(n)), error=None)
            for name, n in topics.items()
        }
    )


def _done(value: object) -> Future[object]:
    future: Future[object] = Future()
    future.set_result(value)
    return future


class LaggingMetadataAdmin:
    """Topics it creates appear in its metadata only `lag` listings later, as on a busy broker."""

    def __init__(self, existing: Mapping[str, int], lag: int) -> None:
        self.topics = dict(existing)
        self.pending: dict[str, int] = {}
        self.lag = lag
        self.listings = 0

    def list_topics(self, timeout: float) -> SimpleNamespace:
        self.listings += 1
        if self.pending and self.lag == 0:
            self.topics.update(self.pending)
            self.pending.clear()
        self.lag = max(0, self.lag - 1)
        return _metadata(self.topics)

    def create_topics(self, new: list[Any], operation_timeout: float) -> dict[str, Future[object]]:
        for t in new:
            self.pending[t.topic] = t.num_partitions
        return {t.topic: _done(None) for t in new}

    def describe_configs(self, resources: list[Any]) -> dict[Any, Future[object]]:
        policy = SimpleNamespace(value="compact")
        return {r: _done({"cleanup.policy": policy}) for r in resources}


def test_topics_created_at_start_are_awaited_until_metadata_lists_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two workers starting together: the changelog topic exists (or was just created) but the
    # next metadata listing does not show it yet. Start-up used to fail with a KeyError.
    admin = LaggingMetadataAdmin({"samples": 6}, lag=2)
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf, **kw: admin)
    settings = Settings(model_path=Path("m.keras"), create_topics=True, startup_timeout_s=5)
    topology = kafka_clients.prepare_topics(settings)
    assert topology.input_partitions == 6
    assert admin.listings >= 3  # it listed again until the new topics showed up


def test_topics_that_never_show_up_fail_start_up_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = LaggingMetadataAdmin({"samples": 6}, lag=10**9)
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf, **kw: admin)
    settings = Settings(model_path=Path("m.keras"), create_topics=True, startup_timeout_s=0.3)
    with pytest.raises(kafka_clients.StartupError, match="not in the broker's metadata"):
        kafka_clients.prepare_topics(settings)


class RefusingAdmin:
    """A broker that refuses the client's credentials: metadata never comes, and the client
    reports an authentication error through error_cb when polled."""

    def __init__(self, conf: object, error_cb: Callable[[KafkaError], None]) -> None:
        self.error_cb = error_cb
        self.listings = 0

    def list_topics(self, timeout: float) -> object:
        self.listings += 1
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    def poll(self, timeout: float) -> int:
        self.error_cb(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))
        return 1


def test_refused_credentials_fail_start_up_at_once_and_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Wrong credentials used to be reported as "Kafka is unreachable", after the whole start-up
    # timeout.
    admins: list[RefusingAdmin] = []

    def refusing(conf: object, error_cb: Callable[[KafkaError], None]) -> RefusingAdmin:
        admins.append(RefusingAdmin(conf, error_cb))
        return admins[-1]

    monkeypatch.setattr(kafka_clients, "AdminClient", refusing)
    settings = Settings(model_path=Path("m.keras"), startup_timeout_s=3600)
    with pytest.raises(kafka_clients.StartupError, match="refused the credentials") as info:
        kafka_clients.prepare_topics(settings)
    assert "KAFKA_SASL_PASSWORD" in str(info.value)
    assert admins[0].listings == 1  # it did not wait out the hour
