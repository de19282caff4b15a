"""The Kafka loop's failure paths, without a broker (tests.unit.kafka_fakes)."""

from __future__ import annotations

import itertools

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer import runner
from consumer.codecs import changelog as changelog_codec
from consumer.codecs.input_batch import DecodedBatch
from consumer.config import Guarantee
from consumer.engine.results import BatchResult
from consumer.engine.state_table import StateTable
from consumer.runner import InstanceFencedError
from tests.unit.kafka_fakes import (
    CHANGELOG,
    INPUT,
    OUTPUT,
    FakeConsumer,
    FakeMessage,
    Fakes,
    make_runner,
    sample,
)


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
    f = make_runner(guarantee, commit_interval_ms=0)
    f.consumer.before_consume = _assign_first(0)  # type: ignore[assignment]
    # An idle poll between the batches: at-least-once, the first batch's offsets are committed at
    # the checkpoint after the one that snapshotted its state.
    f.consumer.batches = [[], [sample("a", 0, 0)], [], [sample("b", 0, 1), sample("c", 0, 2)]]
    process = f.runner.models.current.process_batch
    batches: list[int] = []

    def failing(batch: DecodedBatch) -> BatchResult:
        batches.append(len(batch))
        if len(batches) == 2:
            raise RuntimeError("injected")
        return process(batch)

    monkeypatch.setattr(f.runner.models.current, "process_batch", failing)
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
    f = make_runner()
    r = f.runner
    f.assign(0, 1)
    r._process([sample("a", 0, 0, ',"end":true'), sample("b", 1, 0)])
    if lost:
        r._checkpoint()  # writes "a ended at 0", commits offset 1, queues a's tombstone
        f.consumer.callbacks["on_lost"](f.consumer, [TopicPartition(INPUT, 0)])
    else:
        f.consumer.revoke_now(0)  # the same checkpoint, then the partition goes
    assert (b"a", 0) in [(p.key, p.partition) for p in f.producer.produced]
    f.producer.produced.clear()
    r._process([sample("b", 1, 1)])
    r._checkpoint()
    changelog = [(p.key, p.partition) for p in f.producer.produced if p.topic == CHANGELOG]
    assert (b"b", 1) in changelog
    assert all(partition != 0 for _, partition in changelog), changelog


def test_one_abort_is_one_rewind(monkeypatch: pytest.MonkeyPatch) -> None:
    # An aborted transaction's records come back to the delivery callback as purged. Those
    # reports used to stay in the sink's failure list: the next, successful, commit raised them,
    # rewound a committed transaction and left it marked open, which caused a second rewind.
    f = make_runner("exactly-once")
    r = f.runner
    rewinds: list[list[int]] = []
    rewind = r._rewind

    def counted() -> None:
        rewinds.append(sorted(r.assigned))
        rewind()

    monkeypatch.setattr(r, "_rewind", counted)
    f.assign(0)
    r._transacting(r._process, [sample("a", 0, 0)])
    f.producer.fail_send_offsets = KafkaException(
        KafkaError(KafkaError._TIMED_OUT, "injected", retriable=True)
    )
    r._checkpoint()
    assert f.producer.calls[-1] == "abort" and len(rewinds) == 1
    r.sink.serve()  # the purge reports arrive
    f.restore()  # the rewind restores the partition before its records are read again
    # Back to the committed offset (none: the beginning) once resumed, not before: a resume may
    # go back to the last position consumed.
    assert f.consumer.ops[-3:] == [("pause", 0), ("resume", 0), ("seek", 0)]
    assert f.consumer.seeks[-1] == (0, -2)
    assert f.producer.purged == [] and f.producer.calls.count("abort") == 1
    r._transacting(r._process, [sample("a", 0, 0)])
    r._checkpoint()
    assert f.producer.calls[-2:] == ["send_offsets", "commit"]
    assert len(rewinds) == 1
    assert not r.checkpointer.in_transaction
    r._transacting(r._process, [sample("a", 0, 1)])
    assert f.producer.calls[-1] == "begin"  # a new transaction for the next batch


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
@pytest.mark.timeout(30)
def test_a_fenced_worker_rejoins_and_ends_naming_the_flag_when_fenced_again(
    monkeypatch: pytest.MonkeyPatch, guarantee: Guarantee
) -> None:
    # Another process joined with the same group.instance.id, or the broker fenced the member by
    # its own id after a coordinator restart (Kafka 4.x does). librdkafka reports it to error_cb
    # as _FATAL with fatal() false: the worker used to take that for a warning and poll on with a
    # dead consumer. Now a fenced worker drops its partitions uncommitted and rejoins with a new
    # consumer; fenced again within the window, it ends saying what to do.
    monkeypatch.setattr(runner, "_MAX_REJOINS", 1)
    f = make_runner(guarantee)
    fatal = KafkaError(
        KafkaError._FATAL,
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
    )

    def fenced(consumer: FakeConsumer) -> None:
        if consumer.consumed == 1:
            consumer.assign_now(0)
        elif consumer.consumed in (3, 6):
            assert consumer.on_error is not None
            consumer.on_error(fatal)
        elif consumer.consumed == 4:
            assert f.runner.assigned == set()  # dropped
            assert f.clients.consumers_made == 2  # and rejoined with a new consumer
            consumer.assign_now(0)
        elif consumer.consumed > 10:
            f.runner.stop()  # the test's own way out of a worker that does not stop

    f.consumer.before_consume = fenced
    f.consumer.batches = [[sample("a", 0, 0)], [sample("b", 0, 1)]]
    with pytest.raises(InstanceFencedError, match="--instance-id") as info:
        f.runner.run()
    assert f.runner.settings.instance_id in str(info.value)
    assert f.consumer.consumed == 6
    assert f.clients.consumers_made == 2


def test_a_produce_refused_by_a_failed_transaction_is_a_failed_commit() -> None:
    # The transaction failed underneath (the broker lost the producer's sequence numbers):
    # the next produce raises. The worker used to die of it instead of aborting.
    f = make_runner("exactly-once")
    f.assign(0)
    f.producer.fail_produce = KafkaException(KafkaError(KafkaError._STATE, "injected"))
    f.runner._transacting(f.runner._process, [sample("dev-1", 0, 7)])
    assert f.producer.calls == ["init", "begin", "abort"]
    assert not f.runner.checkpointer.in_transaction


def test_a_fenced_producers_error_raised_by_poll_between_batches_replaces_the_producer() -> None:
    # After a partition leader was killed, the transactional producer was fenced and its fatal
    # error came out of the poll that serves delivery reports between batches: the worker died
    # of it instead of aborting and replacing the producer, as a failed commit does.
    f = make_runner("exactly-once", commit_interval_ms=60_000)
    fenced = KafkaException(KafkaError(KafkaError._FENCED, "injected", fatal=True))

    def hook(consumer: FakeConsumer) -> None:
        if consumer.consumed == 1:
            consumer.assign_now(0)
        if consumer.consumed == 3:
            f.producer.fail_poll = fenced
        if consumer.consumed == 6:
            f.runner.stop()

    f.consumer.before_consume = hook
    f.consumer.batches = [[], [sample("a", 0, 0)], [], [], []]
    f.runner.run()  # used to raise the KafkaException
    assert len(f.producers) == 2  # the fenced one replaced
    assert f.producers[1].calls[0] == "init"  # the new one took over the transactional id


def _changelog_states(
    partition: int, keys: list[str], step: int
) -> list[tuple[bytes | None, bytes | None]]:
    table = StateTable((3, 1), 2)
    for i, key in enumerate(keys):
        slot = table.allocate(key, partition)
        table.steps[slot], table.last_offset[slot] = step, -1 if i else step - 1
    return [(k.encode(), changelog_codec.encode_state(table, k, "prefixsum")) for k in keys]


def test_the_poll_loop_does_not_wait_for_records_while_a_restore_is_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each loop iteration waited for input (max wait) between two slices of the restore, with
    # every restoring partition paused: a tenth of a restore's time went to waiting for nothing.
    f = make_runner("at-least-once")
    r = f.runner
    monkeypatch.setattr(runner, "_RESTORE_SLICE_S", 0.0)  # one changelog read per iteration
    f.reader.records[1] = _changelog_states(1, [f"k{i}" for i in range(6)], step=5)
    f.reader.per_consume = 2
    restoring: list[bool] = []

    def rebalance(consumer: FakeConsumer) -> None:
        restoring.append(bool(r.restorer.pending))
        if consumer.consumed == 1:
            consumer.assign_now(1)
        elif consumer.consumed > 8:
            r.stop()

    f.consumer.before_consume = rebalance
    r.run()
    polls = list(zip(f.consumer.timeouts, restoring, strict=True))
    assert {busy for _, busy in polls} == {True, False}
    assert {t for t, busy in polls if busy} == {0.0}
    assert {t for t, busy in polls if not busy} == {r.settings.max_wait_ms / 1000}


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
@pytest.mark.timeout(30)
def test_a_restore_runs_in_slices_between_polls_with_no_transaction_open(
    monkeypatch: pytest.MonkeyPatch, guarantee: Guarantee
) -> None:
    # The restore used to run inside the assignment callback: no poll for its whole length (a
    # long one got the worker dropped from the group) and, exactly-once, the open transaction
    # waited for it (a long one timed it out). Now: commit, pause, restore a slice per loop
    # iteration while the partitions already owned keep flowing, then resume.
    f = make_runner(guarantee, commit_interval_ms=0)
    r = f.runner
    monkeypatch.setattr(runner, "_RESTORE_SLICE_S", 0.0)  # one changelog read per iteration
    f.reader.records[1] = _changelog_states(1, ["z", *(f"k{i}" for i in range(19))], step=5)
    f.reader.per_consume = 2
    seen: dict[str, object] = {}

    def rebalance(consumer: FakeConsumer) -> None:
        if consumer.consumed == 1:
            consumer.assign_now(0)
        elif consumer.consumed == 3:
            r._transacting(r._process, [sample("a", 0, 0)])
            reads = f.reader.consumed
            consumer.assign_now(1)
            seen["reads_in_callback"] = f.reader.consumed - reads
            seen["calls_after_assign"] = list(f.producer.calls[-2:])
            seen["paused"] = set(consumer.paused)
        elif consumer.consumed > 30:
            seen["ready"] = r.health.readiness().ready
            r.stop()

    process = r.models.current.process_batch
    batches: list[tuple[list[int], bool]] = []

    def recording(batch: DecodedBatch) -> BatchResult:
        records, _ = batch.in_order()
        batches.append(([rec.partition for rec in records], 1 in r.restorer.pending))
        return process(batch)

    monkeypatch.setattr(r.models.current, "process_batch", recording)
    f.consumer.before_consume = rebalance
    f.consumer.batches = [[], [], [], [sample("z", 1, 5)]] + [
        [sample("a", 0, offset)] for offset in range(1, 8)
    ]
    r.run()
    assert seen["reads_in_callback"] == 0 and seen["paused"] == {1}
    if r.transactional:
        assert seen["calls_after_assign"] == ["send_offsets", "commit"]
    assert ([0], True) in batches  # partition 0 flowed while partition 1 was restoring
    assert ([1], False) in batches  # partition 1's record waited for its keys
    outputs = [orjson.loads(p.value or b"") for p in f.producer.produced if p.topic == OUTPUT]
    assert [o["step"] for o in outputs if o["sequence_id"] == "z"] == [6]  # after step 5
    assert seen["ready"] is True


def test_a_partition_revoked_mid_restore_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    f = make_runner()
    r = f.runner
    monkeypatch.setattr(runner, "_RESTORE_SLICE_S", 0.0)
    f.reader.records[1] = _changelog_states(1, [f"k{i}" for i in range(20)], step=2)
    f.reader.per_consume = 5
    f.consumer.assign_now(1)
    r._restore_slice()
    assert len(r.models) == 5 and not r.health.readiness().ready
    f.consumer.revoke_now(1)
    assert not r.restorer.pending and f.reader.assigned == {} and len(r.models) == 0
    r._restore_slice()  # nothing left to do
    f.assign(1)  # assigned again: restored from the beginning
    assert len(r.models) == 20 and r.health.readiness().ready


def test_a_revoke_whose_checkpoint_rewinds_does_not_restore_the_revoked_partition() -> None:
    # The revoke's checkpoint failed (exactly-once: the transaction was aborted), so the worker
    # rewound: it restored every partition it held, the revoked one included, and the revoke
    # then dropped that one without stopping its restore, which went on filling the table with
    # the states of a partition another worker owns (and resumed it, unassigned, at the end).
    f = make_runner("exactly-once")
    r = f.runner
    f.reader.records[1] = _changelog_states(1, ["theirs"], step=2)
    f.assign(0, 1)
    r._transacting(r._process, [sample("a", 0, 0), sample("b", 1, 0)])
    f.producer.fail_send_offsets = KafkaException(
        KafkaError(KafkaError._TIMED_OUT, "injected", retriable=True)
    )
    f.consumer.revoke_now(1)
    assert r.assigned == {0}
    assert 1 not in r.restorer.pending
    f.restore()
    assert "theirs" not in r.models.current.table
    assert ("resume", 1) not in f.consumer.ops[-3:]


def test_a_corrupt_newest_state_is_counted_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    f = make_runner()
    f.reader.records[0] = [*_changelog_states(0, ["a"], step=3), (b"a", b"LSS1\x00")]
    f.assign(0)
    assert "a" not in f.runner.models.current.table
    assert f.runner.metrics.states_corrupt._value.get() == 1
    logged = [rec for rec in caplog.records if rec.getMessage() == "corrupt_state"]
    assert len(logged) == 1
    fields = vars(logged[0])["lstm_scorer_fields"]
    assert (fields["key"], fields["partition"], fields["offset"]) == ("a", 0, 1)


def test_a_record_of_a_partition_still_restoring_is_read_again_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f = make_runner()
    r = f.runner
    f.reader.records[1] = _changelog_states(1, ["z"], step=5)
    f.consumer.assign_now(1)
    r._process([sample("z", 1, 7), sample("z", 1, 8)])
    assert not f.producer.produced and r.positions == {}
    f.restore()
    assert f.consumer.ops[-2:] == [("resume", 1), ("seek", 1)] and f.consumer.seeks[-1] == (1, 7)


@pytest.mark.timeout(30)
def test_the_first_batch_after_idleness_is_checkpointed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The commit timer ran from the last checkpoint even when it had nothing to commit, so a
    # worker's first batch waited up to an interval: long enough for a crash to lose its state
    # after its outputs were out. An idle worker no longer commits the same offsets again either.
    f = make_runner(commit_interval_ms=600_000)
    commits_seen: list[int] = []

    def hook(consumer: FakeConsumer) -> None:
        if consumer.consumed == 1:
            consumer.assign_now(0)
        commits_seen.append(len(consumer.commits))
        if consumer.consumed == 20:
            f.runner.stop()

    f.consumer.before_consume = hook
    f.consumer.batches = [[] for _ in range(5)] + [[sample("a", 0, 0)]]
    f.runner.run()
    # At-least-once commits the positions a checkpoint took at the next one: when idle, at the
    # next empty poll, right after the batch's.
    assert commits_seen[7] == 1 and f.consumer.commits[0] == [(0, 1)]
    assert commits_seen[-1] == 1  # idle since: no further commits until the stop


def test_an_idle_workers_commit_whose_answer_is_lost_is_asked_again_an_interval_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An offset commit asked while idle whose answer never came was never asked again: the
    # group's committed offsets stayed behind for good, though every output was delivered.
    f = make_runner(commit_interval_ms=1000)
    clock = [0.0]
    monkeypatch.setattr("consumer.runner.time.monotonic", lambda: clock[0])
    deliver = f.consumer.on_commit
    dropped: list[list[TopicPartition]] = []
    assert deliver is not None

    def losing_the_first(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if not dropped:
            dropped.append(partitions)
            return
        deliver(err, partitions)

    commits_seen: list[int] = []

    def hook(consumer: FakeConsumer) -> None:
        clock[0] += 0.1  # an idle poll's wait
        if consumer.consumed == 1:
            consumer.assign_now(0)
        commits_seen.append(len(consumer.commits))
        if consumer.consumed == 40:
            f.runner.stop()

    f.consumer.on_commit = losing_the_first
    f.consumer.before_consume = hook
    f.consumer.batches = [[], [sample("a", 0, 0)]]
    f.runner.run()
    assert dropped and f.consumer.commits[:2] == [[(0, 1)], [(0, 1)]]
    # Not asked again on every idle poll: an interval after the checkpoint that asked it.
    first, second = commits_seen.index(1), commits_seen.index(2)
    assert 9 <= second - first <= 11
    assert commits_seen[-1] == 2  # confirmed since: nothing more until the stop


def test_a_rewind_while_the_group_coordinator_moves_waits_for_it() -> None:
    # The coordinator's broker SIGKILLed: the commit failed, and the rewind's request for the
    # committed offsets timed out while the group moved; the worker exited 1 on it.
    f = make_runner("exactly-once")
    r = f.runner
    f.assign(0)
    r._transacting(r._process, [sample("a", 0, 0)])
    f.producer.fail_send_offsets = KafkaException(
        KafkaError(KafkaError.UNKNOWN_MEMBER_ID, "injected")
    )
    asked = []
    answer = f.consumer.committed

    def moving(partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        asked.append(timeout)
        if len(asked) <= 2:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets")
            )
        return answer(partitions, timeout)

    f.consumer.committed = moving  # type: ignore[method-assign]
    r._checkpoint()
    assert len(asked) == 3
    f.restore()
    assert f.consumer.seeks[-1] == (0, -2)  # read again from the (absent) commit


def test_every_stage_of_a_batch_is_timed() -> None:
    """`stage_seconds{stage}`: where the loop's time goes, plain samples and others alike."""
    f = make_runner()
    f.assign(0)
    batch = [sample("a", 0, 1), sample("b", 0, 2), sample("a", 0, 3, ',"end":true'),
             FakeMessage(b"c", b"not json", partition=0, offset=4)]  # fmt: skip
    f.runner._process(batch)  # type: ignore[arg-type]
    f.runner._checkpoint()
    (family,) = f.runner.metrics.stage_seconds.collect()
    seconds = {s.labels["stage"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert set(seconds) == {"consume", "decode", "key_to_slot", "model_step", "bookkeeping",
                            "encode", "produce", "checkpoint"}  # fmt: skip
    assert seconds["consume"] == 0  # not polled here
    assert all(seconds[s] > 0 for s in seconds if s != "consume"), seconds
    outputs = [orjson.loads(p.value or b"") for p in f.producer.produced if p.topic == OUTPUT]
    assert sorted((o["sequence_id"], o["step"], o["final"]) for o in outputs) == [
        ("a", 1, False), ("a", 2, True), ("b", 1, False)]  # fmt: skip
    assert [p.topic for p in f.producer.produced].count(f.runner.settings.dlq_topic) == 1


def test_checkpoints_start_an_interval_apart_however_long_they_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The interval ran from a checkpoint's end, so each transaction stayed open for the interval
    # plus the last commit's duration, and readers of the outputs waited for both.
    f = make_runner("exactly-once", commit_interval_ms=100)
    clock = [0.0]
    monkeypatch.setattr("consumer.runner.time.monotonic", lambda: clock[0])
    started: list[float] = []
    commit = f.producer.commit_transaction

    def slow_commit(timeout: float) -> None:
        started.append(round(clock[0], 3))
        clock[0] += 0.04  # a commit taking 40 ms
        commit(timeout)

    def hook(consumer: FakeConsumer) -> None:
        clock[0] += 0.01  # a loop iteration taking 10 ms
        if consumer.consumed == 1:
            consumer.assign_now(0)
        if consumer.consumed == 40:
            f.runner.stop()

    f.producer.commit_transaction = slow_commit  # type: ignore[method-assign]
    f.consumer.before_consume = hook
    f.consumer.batches = [[]] + [[sample("a", 0, i)] for i in range(60)]
    f.runner.run()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(started[1:-1])]
    assert gaps and all(g <= 0.101 for g in gaps), gaps
