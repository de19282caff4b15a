"""The checkpoint and the exactly-once transaction's lifecycle, without a broker
(tests.unit.kafka_fakes): what a failure at each step leaves behind."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from prometheus_client import CollectorRegistry

from consumer import checkpoint
from consumer.changelog_writer import ChangelogWriter
from consumer.checkpoint import Checkpointer
from consumer.engine.state_table import StateTable
from consumer.metrics import Metrics
from consumer.sink import Sink
from tests.unit.kafka_fakes import CHANGELOG, INPUT, FakeConsumer, FakeProducer, sample


class Made:
    """A checkpointer over fakes, and every producer it made."""

    def __init__(self, transactional: bool = True) -> None:
        self.producers: list[FakeProducer] = []
        self.sink = Sink()
        self.table = StateTable((3, 1), 2)
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        writer = ChangelogWriter(
            sink=self.sink, tables=lambda: [(self.table, "v")], topic=CHANGELOG, metrics=metrics
        )
        self.checkpointer = Checkpointer(
            sink=self.sink,
            changelog=writer,
            input_topic=INPUT,
            transactional=transactional,
            metrics=metrics,
            new_producer=self._new_producer,
        )
        self.checkpointer.start_producer()
        # Commit answers reach the checkpointer when a test serves them (answer_commits).
        self.consumer = cast(Consumer, FakeConsumer(on_commit=self.checkpointer.on_commit))

    def _new_producer(self) -> Producer:
        self.producers.append(FakeProducer(self.sink.on_delivery))
        return cast(Producer, self.producers[-1])

    def offset_commit_failures(self) -> float | None:
        return self.registry.get_sample_value(
            "lstm_scorer_commit_failures_total", {"kind": "offset_commit"}
        )

    def checkpoint(self, positions: dict[int, int]) -> str:
        return self.checkpointer.checkpoint(self.consumer, positions, set(positions))


def _error(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "injected", **flags))


def test_a_commit_sends_the_offsets_and_commits_the_transaction() -> None:
    m = Made()
    assert m.checkpoint({0: 5}) == "nothing"  # no transaction open: nothing to commit
    m.checkpointer.begin()
    assert m.checkpoint({0: 5}) == "committed"
    assert m.producers[0].calls == ["init", "begin", "send_offsets", "commit"]
    assert m.producers[0].sent_offsets == [[(0, 5)]]
    assert not m.checkpointer.in_transaction


def test_an_abort_that_fails_replaces_the_producer() -> None:
    # After a broker restart the commit times out and the abort fails too (the producer lost
    # its coordinator, or its epoch). The worker used to die of the abort's exception.
    m = Made()
    m.checkpointer.begin()
    m.producers[0].fail_send_offsets = _error(KafkaError._TIMED_OUT, retriable=True)
    m.producers[0].fail_abort = _error(KafkaError.INVALID_TXN_STATE, fatal=True)
    assert m.checkpoint({0: 5}) == "rewind"
    assert len(m.producers) == 2 and m.producers[1].calls == ["init"]  # replaced, initialised
    assert not m.checkpointer.in_transaction
    assert m.sink.producer is cast(object, m.producers[1])


@pytest.mark.timeout(60)
def test_a_stuck_transactional_call_replaces_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    # librdkafka can ignore send_offsets_to_transaction's timeout and wait forever for a group
    # coordinator it forgot in a broker restart; the worker used to hang with it.
    monkeypatch.setattr(checkpoint, "_GRACE_S", 0.0)
    m = Made()
    m.checkpointer.timeout_s = 0.2
    m.producers[0].stuck.set()
    try:
        m.checkpointer.begin()
        assert m.checkpoint({0: 5}) == "rewind"
        assert len(m.producers) == 2 and m.producers[1].calls == ["init"]
        assert not m.checkpointer.in_transaction
    finally:
        m.producers[0].release.set()


def test_a_fatal_transaction_error_replaces_the_producer_and_another_aborts() -> None:
    m = Made()
    m.checkpointer.begin()
    assert m.checkpointer.failed(KafkaError(KafkaError.PRODUCER_FENCED, "fenced", fatal=True))
    assert len(m.producers) == 2 and "abort" not in m.producers[0].calls
    m.checkpointer.begin()
    assert m.checkpointer.failed(KafkaError(KafkaError._TIMED_OUT, "slow"))
    assert m.producers[1].calls == ["init", "begin", "abort"] and len(m.producers) == 2


def test_at_least_once_a_failed_offset_commit_is_retried_not_rewound() -> None:
    m = Made(transactional=False)

    def refuse(**_: Any) -> None:
        raise _error(KafkaError.REBALANCE_IN_PROGRESS)

    m.consumer.commit = refuse  # type: ignore[method-assign,assignment]
    assert m.checkpoint({0: 5}) == "failed"
    assert m.producers[0].calls == []  # no transaction to abort


def test_at_least_once_an_undelivered_record_rewinds_before_any_offset_is_committed() -> None:
    m = Made(transactional=False)
    m.sink.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), cast(Any, sample("k", 0, 0)))
    assert m.checkpoint({0: 5}) == "rewind"
    assert cast(FakeConsumer, m.consumer).commits == []


@pytest.mark.parametrize("transactional", [False, True])
def test_each_step_of_a_checkpoint_is_timed(transactional: bool) -> None:
    """`commit_blocked_seconds{step}`: where a checkpoint holds the loop."""
    m = Made(transactional=transactional)
    m.checkpointer.begin()
    assert m.checkpoint({0: 5}) == "committed"
    (family,) = m.checkpointer.metrics.commit_blocked_seconds.collect()
    counts = {s.labels["step"]: s.value for s in family.samples if s.name.endswith("_count")}
    if transactional:
        want = {"changelog": 1, "flush": 0, "offsets": 0, "send_offsets": 1,
                "commit_transaction": 1}  # fmt: skip
    else:
        want = {"changelog": 1, "flush": 2, "offsets": 1, "send_offsets": 0,
                "commit_transaction": 0}  # fmt: skip
    assert counts == want


def _live(m: Made, key: str, partition: int, value: float) -> None:
    slot = m.table.allocate(key, partition)
    m.table.states[0][slot] = value
    m.table.mark_changed(key)


def _changelog(m: Made) -> list[tuple[bytes | None, int]]:
    """The changelog records delivered so far: key and partition."""
    return [(r.key, r.partition) for r in m.producers[0].committed if r.topic == CHANGELOG]


def test_pipelined_commits_a_checkpoints_positions_once_its_states_are_delivered() -> None:
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    delivered_at_commit: list[int] = []
    commit = consumer.commit

    def watched(offsets: list[Any], asynchronous: bool) -> None:
        delivered_at_commit.append(len(_changelog(m)))
        commit(offsets, asynchronous)

    consumer.commit = watched  # type: ignore[method-assign]
    _live(m, "k", 0, 1.0)
    assert m.checkpointer.checkpoint(m.consumer, {0: 5}, {0}, pipelined=True) == "committed"
    # Nothing committed yet, the state copied and not yet produced: the loop goes on.
    assert consumer.commits == [] and m.checkpointer.behind == {0: 5}
    assert m.checkpointer.changelog.unsent() == 1 and _changelog(m) == []
    m.table.states[0][m.table.slot_of("k")] = 2.0  # the table moves on after the snapshot
    m.checkpointer.changelog.send_some({0})
    (record,) = [r for r in m.producers[0].produced if r.topic == CHANGELOG]
    assert record.value is not None and np.frombuffer(record.value[-16:], np.float32)[1] == 1.0
    assert m.checkpointer.checkpoint(m.consumer, {0: 7}, {0}, pipelined=True) == "committed"
    assert consumer.commits == [[(0, 5)]] and delivered_at_commit == [1]
    consumer.answer_commits()
    assert m.checkpointer.behind == {0: 7}
    assert m.checkpointer.checkpoint(m.consumer, {0: 7}, {0}, pipelined=True) == "committed"
    assert consumer.commits == [[(0, 5)], [(0, 7)]] and m.checkpointer.behind == {0: 7}
    consumer.answer_commits()
    assert m.checkpointer.behind == {}  # confirmed
    assert m.checkpointer.checkpoint(m.consumer, {0: 7}, {0}, pipelined=True) == "committed"
    assert len(consumer.commits) == 2  # nothing new: the same offsets are not committed again


def test_pipelined_a_dropped_partitions_snapshot_is_neither_written_nor_committed() -> None:
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    _live(m, "a", 0, 1.0)
    _live(m, "b", 1, 1.0)
    m.checkpointer.checkpoint(m.consumer, {0: 3, 1: 4}, {0, 1}, pipelined=True)
    # Partition 1 lost before its snapshot went out: its new owner writes its states.
    m.checkpointer.changelog.drop_partitions([1])
    m.checkpointer.forget([1])
    m.table.drop_partitions([1])
    m.checkpointer.checkpoint(m.consumer, {0: 3}, {0}, pipelined=True)
    assert _changelog(m) == [(b"a", 0)]
    assert consumer.commits == [[(0, 3)]]


def test_a_checkpoint_that_is_not_pipelined_writes_what_a_pipelined_one_left_first() -> None:
    # A revoke's (or the last) checkpoint commits the current positions at once; the snapshot
    # still unsent goes out before the newer states, so the compacted changelog keeps the newest.
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    _live(m, "k", 0, 1.0)
    m.checkpointer.checkpoint(m.consumer, {0: 5}, {0}, pipelined=True)
    m.table.states[0][m.table.slot_of("k")] = 2.0
    m.table.mark_changed("k")
    assert m.checkpoint({0: 6}) == "committed"
    assert consumer.commits == [[(0, 6)]] and m.checkpointer.behind == {}
    values = [r.value for r in m.producers[0].committed if r.topic == CHANGELOG]
    assert [np.frombuffer(v[-16:], np.float32)[1] for v in values if v] == [1.0, 2.0]


def test_a_snapshot_is_handed_to_the_producer_a_slice_per_loop() -> None:
    m = Made(transactional=False)
    for i in range(20_000):
        _live(m, f"k{i}", i % 2, 1.0)
    m.checkpointer.checkpoint(m.consumer, {0: 1, 1: 1}, {0, 1}, pipelined=True)
    writer, produced = m.checkpointer.changelog, m.producers[0].produced
    sizes = []
    while writer.unsent():
        before = len(produced)
        writer.send_some({0, 1})
        sizes.append(len(produced) - before)
    assert sizes == [1250] * 16  # spread over 16 loops, not one burst
    assert len({r.key for r in produced}) == 20_000


def _tombstones(m: Made) -> list[bytes | None]:
    """Tombstones handed to the producer so far."""
    return [r.key for r in m.producers[0].produced if r.topic == CHANGELOG and r.value is None]


def test_pipelined_offsets_are_committed_without_waiting_for_the_broker() -> None:
    # The group coordinator's answer took over 50 ms now and then, with the loop waiting on it.
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    asked: list[bool] = []
    commit = consumer.commit

    def watched(offsets: list[Any], asynchronous: bool) -> None:
        asked.append(asynchronous)
        commit(offsets, asynchronous)

    consumer.commit = watched  # type: ignore[method-assign]
    m.checkpointer.checkpoint(m.consumer, {0: 5}, {0}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 7}, {0}, pipelined=True)
    assert consumer.commits == [[(0, 5)]] and asked == [True]


def test_a_tombstone_waits_for_the_broker_to_confirm_the_commit_past_the_end() -> None:
    # A tombstone written before the input is committed past the end forgets a sequence that a
    # crash would read again from its middle: its last samples would be scored from nothing.
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    _live(m, "k", 0, 1.0)
    m.table.end("k", 3)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)  # "k ended at 3"
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)  # asks for offset 4
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)  # no answer: asks again
    assert consumer.commits == [[(0, 4)], [(0, 4)]] and _tombstones(m) == []
    consumer.answer_commits()
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    assert _tombstones(m) == [b"k"]


def test_a_failed_asynchronous_commit_is_asked_again_and_releases_no_tombstone() -> None:
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    consumer.commit_error = KafkaError(KafkaError.REBALANCE_IN_PROGRESS)
    _live(m, "k", 0, 1.0)
    m.table.end("k", 3)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    consumer.answer_commits()
    assert m.checkpointer.behind == {0: 4}  # an idle worker commits it again, too
    consumer.commit_error = None
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    assert consumer.commits == [[(0, 4)], [(0, 4)]] and _tombstones(m) == []
    consumer.answer_commits()
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    assert _tombstones(m) == [b"k"] and m.checkpointer.behind == {}


def test_an_answer_for_a_partition_forgotten_since_is_ignored() -> None:
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    consumer.commit_error = KafkaError(KafkaError.REBALANCE_IN_PROGRESS)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    m.checkpointer.forget([0])  # revoked: its new owner commits it
    consumer.answer_commits()
    assert m.checkpointer.behind == {}


def test_a_sequence_ended_below_the_confirmed_commit_gets_its_tombstone_with_nothing_new() -> None:
    # An idle sequence evicted long after its input was committed: no new position to commit,
    # and its tombstone still goes out at the next checkpoint.
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    _live(m, "k", 0, 1.0)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    consumer.answer_commits()
    m.table.end("k", 3)  # evicted: its last record was offset 3
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    assert _tombstones(m) == [b"k"] and consumer.commits == [[(0, 4)]]


def test_a_commit_whose_answer_never_comes_is_asked_again_until_confirmed() -> None:
    # Whatever becomes of an answer, an offset not confirmed stays to be committed: otherwise
    # an idle worker's last positions could stay uncommitted for good.
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    m.checkpointer.checkpoint(m.consumer, {0: 4, 1: 9}, {0, 1}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 4, 1: 9}, {0, 1}, pipelined=True)
    consumer.unanswered.clear()  # lost
    # Asked, so an idle loop does not ask again at once; the next checkpoint does.
    assert m.checkpointer.behind == {0: 4, 1: 9} and not m.checkpointer.unasked()
    m.checkpointer.checkpoint(m.consumer, {0: 4, 1: 9}, {0, 1}, pipelined=True)
    assert consumer.commits == [[(0, 4), (1, 9)]] * 2
    consumer.answer_commits()
    assert m.checkpointer.behind == {}


def test_a_failed_answer_for_an_older_commit_is_counted_and_the_newer_one_still_counts() -> None:
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 6}, {0}, pipelined=True)  # asks 4
    m.checkpointer.checkpoint(m.consumer, {0: 6}, {0}, pipelined=True)  # asks 6
    assert m.checkpointer.unasked() is False
    older, newer = consumer.unanswered
    m.checkpointer.on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), older)
    assert m.offset_commit_failures() == 1 and m.checkpointer.behind == {0: 6}
    m.checkpointer.on_commit(None, newer)
    assert m.checkpointer.behind == {}
    m.checkpointer.checkpoint(m.consumer, {0: 6}, {0}, pipelined=True)
    assert consumer.commits == [[(0, 4)], [(0, 6)]]


def test_a_failed_synchronous_commit_is_counted_once() -> None:
    # librdkafka serves a synchronous commit's answer through on_commit as well: the failure
    # was counted where the commit raised, and again when its answer came.
    m = Made(transactional=False)
    consumer = cast(FakeConsumer, m.consumer)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)
    m.checkpointer.checkpoint(m.consumer, {0: 4}, {0}, pipelined=True)  # asks 4
    consumer.commit_error = KafkaError(KafkaError.REBALANCE_IN_PROGRESS)
    consumer.answer_commits()
    assert m.checkpoint({0: 4}) == "failed"  # a revoke's commit, of the same offsets
    consumer.answer_commits()
    # The asynchronous commit's failed answer, and the synchronous commit.
    assert m.offset_commit_failures() == 2
