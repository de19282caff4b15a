"""The Kafka loop's failure paths, without a broker (tests.unit.kafka_fakes)."""

from __future__ import annotations

import pytest

from consumer.batch_result import BatchResult
from consumer.config import Guarantee
from tests.unit.kafka_fakes import CHANGELOG, FakeConsumer, Fakes, make_runner, sample


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
