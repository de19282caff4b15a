"""Client configurations: what the service sets itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer import access_rights, kafka_clients
from consumer.config import Settings, build_settings
from consumer.kafka_clients import consumer_config, producer_config


def _ignore(*_: object) -> None:
    pass


def test_the_instance_id_is_the_static_group_member_and_names_the_transactional_id() -> None:
    s = Settings(model_path=Path("m.keras"), guarantee="exactly-once", instance_id="pod-a")
    # A restart within the session timeout keeps the member's partitions: no rebalance.
    assert consumer_config(s, _ignore)["group.instance.id"] == "pod-a"
    assert producer_config(s, _ignore, _ignore)["transactional.id"] == "lstm-scorer-pod-a"


def test_a_dead_workers_transaction_is_aborted_a_margin_after_the_commit_interval() -> None:
    # Until the broker aborts it, read_committed readers see nothing of the partitions it wrote,
    # the new owner's outputs included: 30 s after a SIGKILL, before this default.
    for interval in (100, 1000, 600_000):
        s = Settings(
            model_path=Path("m.keras"), guarantee="exactly-once", commit_interval_ms=interval
        )
        timeout = producer_config(s, _ignore, _ignore)["transaction.timeout.ms"]
        assert timeout == interval + kafka_clients.TRANSACTION_MARGIN_MS
    chosen = Settings(
        model_path=Path("m.keras"),
        guarantee="exactly-once",
        kafka_producer={"transaction.timeout.ms": "60000"},
    )
    assert producer_config(chosen, _ignore, _ignore)["transaction.timeout.ms"] == "60000"
    at_least_once = Settings(model_path=Path("m.keras"))
    assert "transaction.timeout.ms" not in producer_config(at_least_once, _ignore, _ignore)


# -- start-up topic checks against an admin client that lags or refuses --------------------


def _metadata(topics: Mapping[str, int], brokers: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        topics={
            name: SimpleNamespace(partitions=dict.fromkeys(range(n)), error=None)
            for name, n in topics.items()
        },
        brokers=dict.fromkeys(range(1, brokers + 1)),
    )


def _done(value: object) -> Future[object]:
    future: Future[object] = Future()
    future.set_result(value)
    return future


def _failed(code: int) -> Future[object]:
    future: Future[object] = Future()
    future.set_exception(KafkaException(KafkaError(code)))
    return future


class LaggingMetadataAdmin:
    """Topics it creates appear in its metadata only `lag` listings later, as on a busy broker."""

    def __init__(self, existing: Mapping[str, int], lag: int, brokers: int = 1) -> None:
        self.topics = dict(existing)
        self.pending: dict[str, int] = {}
        self.lag = lag
        self.listings = 0
        self.brokers = brokers
        self.created: list[Any] = []

    def list_topics(self, timeout: float) -> SimpleNamespace:
        self.listings += 1
        if self.pending and self.lag == 0:
            self.topics.update(self.pending)
            self.pending.clear()
        self.lag = max(0, self.lag - 1)
        return _metadata(self.topics, self.brokers)

    def create_topics(
        self, new: list[Any], operation_timeout: float, **_: object
    ) -> dict[str, Future[object]]:
        for t in new:
            self.pending[t.topic] = t.num_partitions
        self.created += new
        return {t.topic: _done(None) for t in new}

    # A broker without an authorizer: every topic it has is visible, operations not listed.
    def describe_topics(self, topics: Any, **_: object) -> dict[str, Future[object]]:
        known = self.topics.keys() | self.pending.keys()
        return {
            name: _done(SimpleNamespace(authorized_operations=None))
            if name in known
            else _failed(KafkaError.UNKNOWN_TOPIC_OR_PART)
            for name in topics.topic_names
        }

    def describe_configs(self, resources: list[Any], **_: object) -> dict[Any, Future[object]]:
        policy = SimpleNamespace(value="compact")
        return {r: _done({"cleanup.policy": policy}) for r in resources}


@pytest.fixture(autouse=True)
def _group_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group rights check's consumer: a broker without an authorizer answers it."""
    probe = SimpleNamespace(
        committed=lambda partitions, timeout: partitions,
        consume=lambda num_messages, timeout: [],
        close=lambda: None,
    )
    monkeypatch.setattr(access_rights, "Consumer", lambda conf: probe)


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


@pytest.mark.parametrize(
    ("brokers", "asked", "replicas", "in_sync"),
    [(1, (0, 0), 1, "1"), (2, (0, 0), 2, "2"), (5, (0, 0), 3, "2"), (5, (5, 3), 5, "3")],
)
def test_created_topics_get_replicas_from_the_cluster_size_unless_told(
    monkeypatch: pytest.MonkeyPatch,
    brokers: int,
    asked: tuple[int, int],
    replicas: int,
    in_sync: str,
) -> None:
    admin = LaggingMetadataAdmin({"samples": 6}, lag=0, brokers=brokers)
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf, **kw: admin)
    settings = Settings(
        model_path=Path("m.keras"),
        create_topics=True,
        replication_factor=asked[0],
        min_insync_replicas=asked[1],
    )
    kafka_clients.prepare_topics(settings)
    assert len(admin.created) == 3
    for topic in admin.created:
        assert topic.replication_factor == replicas
        assert topic.config["min.insync.replicas"] == in_sync
    changelog = next(t for t in admin.created if t.topic == settings.changelog_topic)
    assert changelog.config["cleanup.policy"] == "compact"


def test_topics_another_worker_just_created_are_awaited_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two workers starting together on three brokers: the other one created the changelog
    # between this one's first metadata listing and its rights check, which saw the topic;
    # start-up died of a KeyError on the first listing.
    admin = LaggingMetadataAdmin({"samples": 6}, lag=2)
    admin.pending = {"probabilities": 6, "samples.dlq": 1, "lstm-scorer-state-changelog": 6}
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf, **kw: admin)
    settings = Settings(model_path=Path("m.keras"), create_topics=True, startup_timeout_s=5)
    assert kafka_clients.prepare_topics(settings).input_partitions == 6
    assert admin.created == []  # they existed: nothing to create


def test_the_restore_reader_is_in_the_workers_own_group() -> None:
    # It never joins, but librdkafka looks up its group's coordinator: a group of its own
    # ("<group>-restore") was refused under ACLs granting the worker its group only.
    s = Settings(model_path=Path("m.keras"), group_id="scorers", instance_id="pod-a")
    conf = kafka_clients.restore_consumer_config(s)
    assert conf["group.id"] == "scorers"
    assert "group.instance.id" not in conf and conf["enable.auto.commit"] is False


def test_the_restore_reader_fetches_without_waiting_on_itself() -> None:
    # A restore at 150,000 keys/s spent seconds waiting: librdkafka held the next fetch a second
    # once its queue had filled (fetch.queue.backoff.ms), a watermark ask at a partition's end
    # queued behind a fetch the broker held 500 ms (fetch.wait.max.ms), and 16 MiB fetches
    # gave the first records after 0.3 s.
    conf = kafka_clients.restore_consumer_config(Settings(model_path=Path("m.keras")))
    assert cast(int, conf["fetch.queue.backoff.ms"]) <= 50
    assert cast(int, conf["fetch.wait.max.ms"]) <= 50
    assert cast(int, conf["max.partition.fetch.bytes"]) <= 4 * 1024 * 1024


def test_the_group_consumer_fetches_again_within_a_micro_batch_wait() -> None:
    # librdkafka holds a partition's next fetch fetch.queue.backoff.ms (1,000 ms by default) once
    # its pre-fetch queue passed its threshold; a worker draining a backlog emptied the queue
    # long before that and waited out the rest: 200,000 records/s consumed where 1.4M were there.
    s = Settings(model_path=Path("m.keras"))
    conf = consumer_config(s, _ignore)
    assert cast(int, conf["fetch.queue.backoff.ms"]) <= s.max_wait_ms
    assert (
        conf["fetch.queue.backoff.ms"]
        == kafka_clients.restore_consumer_config(s)["fetch.queue.backoff.ms"]
    )


def test_a_users_consumer_properties_override_the_services_fetch_settings() -> None:
    env = {"KAFKA_CONSUMER_FETCH_QUEUE_BACKOFF_MS": "250", "KAFKA_FETCH_WAIT_MAX_MS": "40"}
    conf = consumer_config(build_settings(["--model", "m.keras"], env), _ignore)
    assert conf["fetch.queue.backoff.ms"] == "250"
    assert conf["fetch.wait.max.ms"] == "40"


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
