"""At-least-once checkpoints that do not stop the loop (`Checkpointer.start` / `advance`), driven
through the runner without a broker (tests.unit.kafka_fakes): the commit order of
docs/design.md holds while the loop goes on, and a failure, revoke or loss in the middle leaves
nothing claimed that was not delivered."""

from __future__ import annotations

from confluent_kafka import KafkaError, TopicPartition

from consumer.codecs import changelog as changelog_codec
from tests.unit.kafka_fakes import CHANGELOG, INPUT, OUTPUT, Fakes, Produced, make_runner, sample


def states(f: Fakes) -> list[tuple[bytes | None, int, int]]:
    """Every changelog state record produced: key, offset and step of the state."""
    out = []
    for p in f.producer.produced:
        if p.topic == CHANGELOG and p.value is not None:
            snap = changelog_codec.decode(p.value)
            out.append((p.key, snap.offset, snap.step))
    return out


def step_counts(f: Fakes) -> dict[str, float]:
    """How often each checkpoint step held the loop so far (`commit_blocked_seconds`)."""
    (family,) = f.runner.metrics.commit_blocked_seconds.collect()
    samples = family.samples
    return {s.labels["step"]: s.value for s in samples if s.name.endswith("_count")}


def loop_iteration(f: Fakes) -> None:
    """What the loop does after a batch: serve delivery reports, carry the checkpoint on."""
    f.runner.sink.serve()
    f.runner._advance_checkpoint()


def test_the_loop_goes_on_while_a_checkpoint_waits_and_commits_what_it_took() -> None:
    f = make_runner()
    r = f.runner
    f.assign(0)
    before = step_counts(f)
    f.producer.hold = True  # the broker has not acknowledged anything yet
    r._process([sample("a", 0, 0)])  # type: ignore[list-item]
    r._start_checkpoint()
    r._process([sample("a", 0, 1)])  # type: ignore[list-item]  # the loop goes on
    loop_iteration(f)
    # Nothing of the state is written before the outputs it follows are acknowledged.
    assert [p.topic for p in f.producer.produced] == [OUTPUT, OUTPUT]
    assert f.consumer.commits == []

    f.producer.hold = False
    loop_iteration(f)  # the outputs acknowledged: the state as it was at the start goes out
    assert states(f) == [(b"a", 0, 1)]  # offset 0, step 1: not the later record's state
    loop_iteration(f)  # the state acknowledged: the offsets the checkpoint took
    assert f.consumer.commits == [[(0, 1)]]
    assert r.checkpointer.advance(r.consumer, r.assigned) == "nothing"  # none under way now
    # What held the loop: taking the checkpoint, handing its states over, the offset commit;
    # no flush (the assignment's checkpoint before, a whole one, had two).
    after = step_counts(f)
    assert {k: after[k] - before[k] for k in after} == {
        "take": 1, "changelog": 1, "flush": 0, "offsets": 1, "send_offsets": 0,
        "commit_transaction": 0,
    }  # fmt: skip


def test_a_second_interval_waits_for_the_checkpoint_under_way() -> None:
    f = make_runner()
    r = f.runner
    f.assign(0)
    f.producer.hold = True
    r._process([sample("a", 0, 0)])  # type: ignore[list-item]
    r._start_checkpoint()
    r._process([sample("a", 0, 1)])  # type: ignore[list-item]
    assert not r.checkpointer.start(r.positions, r.assigned)  # one at a time
    f.producer.hold = False
    loop_iteration(f)
    loop_iteration(f)
    assert f.consumer.commits == [[(0, 1)]]
    r._start_checkpoint()  # the next interval takes the later record
    loop_iteration(f)
    loop_iteration(f)
    assert f.consumer.commits == [[(0, 1)], [(0, 2)]]
    assert states(f) == [(b"a", 0, 1), (b"a", 1, 2)]


def test_an_output_that_failed_to_deliver_rewinds_and_commits_nothing() -> None:
    f = make_runner()
    r = f.runner
    f.assign(0)
    f.producer.fail_delivery = KafkaError(KafkaError._MSG_TIMED_OUT, "injected")
    r._process([sample("a", 0, 0)])  # type: ignore[list-item]
    r._start_checkpoint()
    loop_iteration(f)
    assert f.consumer.commits == [] and states(f) == []
    assert r.restorer.pending  # rewound: the partition's state is being read again


def test_a_revoke_under_way_writes_the_checkpoints_states_before_the_newer_ones() -> None:
    f = make_runner()
    r = f.runner
    f.assign(0)
    f.producer.hold = True
    r._process([sample("a", 0, 0)])  # type: ignore[list-item]
    r._start_checkpoint()
    r._process([sample("a", 0, 1)])  # type: ignore[list-item]
    f.producer.hold = False
    f.consumer.revoke_now(0)
    # Same key, same changelog partition: the older state first, so the newest one wins.
    assert states(f) == [(b"a", 0, 1), (b"a", 1, 2)]
    assert f.consumer.commits == [[(0, 2)]]


def test_a_partition_lost_under_way_gets_neither_its_states_nor_its_offsets_committed() -> None:
    f = make_runner()
    r = f.runner
    f.assign(0, 1)
    f.producer.hold = True
    r._process([sample("a", 0, 0), sample("b", 1, 0)])  # type: ignore[list-item]
    r._start_checkpoint()
    f.consumer.callbacks["on_lost"](f.consumer, [TopicPartition(INPUT, 1)])
    f.producer.hold = False
    loop_iteration(f)
    loop_iteration(f)
    assert [key for key, _, _ in states(f)] == [b"a"]  # b's partition has another owner now
    assert f.consumer.commits == [[(0, 1)]]


def test_records_are_reported_to_the_epoch_they_were_sent_in() -> None:
    f = make_runner()
    sink = f.runner.sink
    f.producer.hold = True
    sink.send(OUTPUT, b"1", b"k")
    first = sink.seal()
    sink.send(OUTPUT, b"2", b"k")
    sink.send(OUTPUT, b"3", b"k")
    assert (first.sent, sink.epoch.sent if sink.epoch else None) == (1, 2)
    assert not first.delivered
    f.producer.hold = False
    sink.serve()
    assert first.delivered and first.acked == 1 and first.failed == 0
    assert f.producer.produced[0] == Produced(OUTPUT, b"1", b"k", -1)
