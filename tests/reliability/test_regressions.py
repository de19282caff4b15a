"""Faults the reliability scenarios found, shown without a broker (Kafka clients are fakes)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from prometheus_client import CollectorRegistry

from consumer import checkpoint, kafka_clients, restore, runner
from consumer.config import Settings
from consumer.engine.state_table import StateTable
from consumer.http_endpoints import Health
from consumer.metrics import Metrics
from tests.prefix_sum_step import PrefixSumStep


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


# -- exactly-once failures around a broker restart ----------------------------------------------


class FakeProducer:
    """A transactional producer whose calls fail as told."""

    def __init__(self) -> None:
        self.fail_send_offsets: KafkaException | None = None
        self.fail_abort: KafkaException | None = None
        self.fail_produce: KafkaException | None = None
        self.stuck = threading.Event()  # set: send_offsets_to_transaction never returns
        self.release = threading.Event()
        self.calls: list[str] = []

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, *args: object, **kwargs: object) -> None:
        if self.fail_produce is not None:
            raise self.fail_produce
        self.calls.append("produce")

    def send_offsets_to_transaction(self, offsets: object, meta: object, timeout: float) -> None:
        self.calls.append("send_offsets")
        if self.stuck.is_set():
            self.release.wait()
        if self.fail_send_offsets is not None:
            raise self.fail_send_offsets

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")
        if self.fail_abort is not None:
            raise self.fail_abort

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        if self.fail_abort is not None:  # a producer in a fatal state refuses everything
            raise self.fail_abort
        return 0

    def __len__(self) -> int:
        return 0


class FakeConsumer:
    def __init__(self, *args: object) -> None:
        pass

    def consumer_group_metadata(self) -> object:
        return object()

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        return partitions

    def seek(self, partition: object) -> None:
        pass


@pytest.fixture
def eos_runner(monkeypatch: pytest.MonkeyPatch) -> tuple[runner.Runner, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def new_producer(*args: object) -> FakeProducer:
        made.append(FakeProducer())
        return made[-1]

    monkeypatch.setattr(runner, "new_consumer", FakeConsumer)
    monkeypatch.setattr(runner, "Consumer", FakeConsumer)
    monkeypatch.setattr(runner, "new_producer", new_producer)
    settings = Settings(model_path=Path("m.keras"), guarantee="exactly-once")
    r = runner.Runner(settings, PrefixSumStep(), Metrics(CollectorRegistry()), Health())
    return r, made


def _error(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "injected", **flags))


def test_an_abort_that_fails_replaces_the_producer(
    eos_runner: tuple[runner.Runner, list[FakeProducer]],
) -> None:
    # After a broker restart the commit times out and the abort fails too (the producer lost
    # its coordinator, or its epoch). The worker used to die of the abort's exception.
    r, made = eos_runner
    made[0].fail_send_offsets = _error(KafkaError._TIMED_OUT, retriable=True)
    made[0].fail_abort = _error(KafkaError.INVALID_TXN_STATE, fatal=True)
    r._begin()
    r.positions[0] = 5
    r._checkpoint()
    assert len(made) == 2 and made[1].calls == ["init"]  # replaced, transactions initialised
    assert not r._in_transaction
    assert r.sink.producer is cast(object, made[1])


def test_a_produce_refused_by_a_failed_transaction_is_a_failed_commit(
    eos_runner: tuple[runner.Runner, list[FakeProducer]],
) -> None:
    # The transaction failed underneath (the broker lost the producer's sequence numbers):
    # the next produce raises. The worker used to die of it instead of aborting.
    r, made = eos_runner
    made[0].fail_produce = _error(KafkaError._STATE)
    msg = FakeMessage(b"dev-1", b'{"features":[1,2,3]}', partition=0, offset=7)
    r._transacting(r._process, [cast(Message, msg)])
    assert made[0].calls == ["init", "begin", "abort"]
    assert not r._in_transaction


@pytest.mark.timeout(60)
def test_a_stuck_transactional_call_replaces_the_producer(
    eos_runner: tuple[runner.Runner, list[FakeProducer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # librdkafka can ignore send_offsets_to_transaction's timeout and wait forever for a group
    # coordinator it forgot in a broker restart; the worker used to hang with it.
    r, made = eos_runner
    monkeypatch.setattr(checkpoint, "_GRACE_S", 0.0)
    r.checkpointer.timeout_s = 0.2
    made[0].stuck.set()
    try:
        r._begin()
        r.positions[0] = 5
        r._checkpoint()
        assert len(made) == 2 and made[1].calls == ["init"]
        assert not r._in_transaction
    finally:
        made[0].release.set()


class FakeMessage:
    def __init__(self, key: bytes, value: bytes, *, partition: int, offset: int) -> None:
        self._key, self._value, self._partition, self._offset = key, value, partition, offset

    def error(self) -> None:
        return None

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_764_150_000_000)


class NotYetLeaderReader:
    """A changelog just created: the first watermark requests find no leader yet."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.asked = 0

    def get_watermark_offsets(self, tp: object, timeout: float, cached: bool) -> tuple[int, int]:
        self.asked += 1
        if self.asked <= self.refusals:
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
        return 0, 0


def test_a_restore_waits_for_a_changelog_leader() -> None:
    # A worker creating the changelog topic and restoring from it at once used to die of
    # NOT_LEADER_FOR_PARTITION from the watermark request.
    reader = NotYetLeaderReader(refusals=2)
    table = StateTable((3, 1), 2)
    stats = restore.restore_partitions(
        cast(Consumer, reader), "changelog", [0], table=table, model_version="v"
    )
    assert stats.records == 0 and reader.asked == 3
