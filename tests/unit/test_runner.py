"""The Kafka loop's failure paths, without a broker (tests.unit.kafka_fakes)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer.batch_result import BatchResult
from consumer.config import Guarantee
from consumer.runner import InstanceFencedError
from tests.unit.kafka_fakes import CHANGELOG, INPUT, FakeConsumer, Fakes, make_runner, sample


def _assign_first(*partitions: int) -> object:
    def hook(consumer: FakeConsumer) -> None:
        if consumer.consumed == 1:
            consumer.assign_now(*partitions)

    return hook


def _committed_offsets(f: Fakes) -> list[tuple[int, int]]:
    if f.runner.transactional:
        return [tp for producer in f.producers for sent in producer.sent_offsets for tp in sent]
    return [tp for commit in f.consumer.commits for tp in commit]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_batch_that_crashes_commits_nothing(
    monkeypatch: pytest.MonkeyPatch, guarantee: Guarantee
) -> None:
    # The engine fails on the second batch. Closing the consumer revokes its partitions, and the
    # revoke used to checkpoint offsets (or commit the transaction) past the failed batch.
    f = make_runner(monkeypatch, guarantee)
    f.consumer.before_consume = _assign_first(0)  # type: ignore[assignment]
    f.consumer.batches = [[sample("a", 0, 0)], [sample("b", 0, 1), sample("c", 0, 2)]]
    process = f.runner.engine.process
    batches: list[int] = []

    def failing(records: list[object], now: float) -> BatchResult:
        batches.append(len(records))
        if len(batches) == 2:
            raise RuntimeError("injected")
        return process(records, now)  # type: ignore[arg-type]

    monkeypatch.setattr(f.runner.engine, "process", failing)
    with pytest.raises(RuntimeError, match="injected"):
        f.runner.run()
    assert batches == [1, 2]
    assert f.consumer.closed
    assert _committed_offsets(f) and all(offset <= 1 for _, offset in _committed_offsets(f))
    if f.runner.transactional:
        assert f.producer.calls[-1] == "abort"  # the failed batch's transaction is dropped
        assert not f.producer.in_transaction
    changelog = [r for p in f.producers for r in p.committed if r.topic == CHANGELOG]
    assert [r.key for r in changelog] == [b"a"]  # the failed batch's state was never written


@pytest.mark.parametrize("lost", [False, True])
def test_no_tombstone_is_written_for_a_partition_no_longer_owned(
    monkeypatch: pytest.MonkeyPatch, lost: bool
) -> None:
    # A sequence ends; the checkpoint that commits past its end queues its tombstone (the one
    # the revoke runs, or an earlier one before a loss). The tombstone used to go out with a
    # later checkpoint, deleting whatever newer state the partition's new owner had written.
    f = make_runner(monkeypatch)
    r = f.runner
    f.consumer.assign_now(0, 1)
    r._process([sample("a", 0, 0, ',"end":true'), sample("b", 1, 0)])  # type: ignore[list-item]
    if lost:
        r._checkpoint()  # writes "a ended at 0", commits offset 1, queues a's tombstone
        f.consumer.callbacks["on_lost"](f.consumer, [TopicPartition(INPUT, 0)])
    else:
        f.consumer.revoke_now(0)  # the same checkpoint, then the partition goes
    assert (b"a", 0) in [(p.key, p.partition) for p in f.producer.produced]
    f.producer.produced.clear()
    r._process([sample("b", 1, 1)])  # type: ignore[list-item]
    r._checkpoint()
    changelog = [(p.key, p.partition) for p in f.producer.produced if p.topic == CHANGELOG]
    assert (b"b", 1) in changelog
    assert all(partition != 0 for _, partition in changelog), changelog


def test_one_abort_is_one_rewind(monkeypatch: pytest.MonkeyPatch) -> None:
    # An aborted transaction's records come back to the delivery callback as purged. Those
    # reports used to stay in the sink's failure list: the next, successful, commit raised them,
    # rewound a committed transaction and left it marked open, which caused a second rewind.
    f = make_runner(monkeypatch, "exactly-once")
    r = f.runner
    rewinds: list[list[int]] = []
    rewind = r._rewind

    def counted() -> None:
        rewinds.append(sorted(r.assigned))
        rewind()

    monkeypatch.setattr(r, "_rewind", counted)
    f.consumer.assign_now(0)
    r._transacting(r._process, [sample("a", 0, 0)])  # type: ignore[list-item]
    f.producer.fail_send_offsets = KafkaException(
        KafkaError(KafkaError._TIMED_OUT, "injected", retriable=True)
    )
    r._checkpoint()
    assert f.producer.calls[-1] == "abort" and len(rewinds) == 1
    r.sink.serve()  # the purge reports arrive
    assert f.producer.purged == [] and f.producer.calls.count("abort") == 1
    r._transacting(r._process, [sample("a", 0, 0)])  # type: ignore[list-item]
    r._checkpoint()
    assert f.producer.calls[-2:] == ["send_offsets", "commit"]
    assert len(rewinds) == 1
    assert not r._in_transaction
    r._transacting(r._process, [sample("a", 0, 1)])  # type: ignore[list-item]
    assert f.producer.calls[-1] == "begin"  # a new transaction for the next batch


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
@pytest.mark.timeout(30)
def test_a_fenced_instance_id_ends_the_worker_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch, guarantee: Guarantee
) -> None:
    # Another process joined with the same group.instance.id. Exactly-once, the worker used to
    # log the consumer's fatal error and poll on for ever; at-least-once it died of an error
    # that did not say what to do.
    f = make_runner(monkeypatch, guarantee)
    fatal = KafkaError(
        KafkaError._FATAL,
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
        fatal=True,
    )

    def fenced(consumer: FakeConsumer) -> None:
        if consumer.consumed == 1:
            consumer.assign_now(0)
        elif consumer.consumed == 3:
            assert consumer.on_error is not None
            consumer.on_error(fatal)
        elif consumer.consumed > 10:
            f.runner.stop()  # the test's own way out of a worker that does not stop

    f.consumer.before_consume = fenced
    f.consumer.batches = [[sample("a", 0, 0)], [sample("b", 0, 1)]]
    with pytest.raises(InstanceFencedError, match="--instance-id") as info:
        f.runner.run()
    assert f.runner.settings.instance_id in str(info.value)
    assert f.consumer.consumed == 3
