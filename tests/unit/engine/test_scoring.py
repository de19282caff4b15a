"""The engine against a plain, record-by-record statement of the semantics in
docs/design.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import changelog as changelog_codec
from consumer.codecs.inputs import InputRecord
from consumer.engine.results import Outputs
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from tests.prefix_sum_step import PrefixSumStep, prefix_outputs
from tests.stream_reference import Reference, decoded_batch, record, reference_run, streams

Row = tuple[str, int, tuple[float, float], str | None, int]


def flatten(outputs: Outputs) -> list[Row]:
    return [
        (k, s, (float(v[0]), float(v[1])), r, o)
        for k, s, v, r, o in zip(
            outputs.keys,
            outputs.steps,
            outputs.values,
            outputs.reasons,
            outputs.offsets,
            strict=True,
        )
    ]


def per_key(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return grouped


@dataclass
class Run:
    engine: Engine
    table: StateTable

    def feed(self, records: list[InputRecord], batch: int, now: float = 0.0) -> list[Row]:
        got: list[Row] = []
        for i in range(0, len(records), batch):
            got += flatten(self.engine.process(records[i : i + batch], now).outputs)
        return got


def make_run(max_steps: int = 0, capacity: int = 2) -> Run:
    step = PrefixSumStep()
    table = StateTable(step.state_sizes, step.n_outputs, initial_capacity=capacity)
    return Run(Engine(step, table, max_steps=max_steps), table)


def expected_rows(
    records: list[InputRecord], max_steps: int | list[int] = 0
) -> tuple[list[Row], Reference]:
    ref = reference_run(records, max_steps)
    rows = [
        (e.key, e.step, prefix_outputs([list(r) for r in e.prefix]), e.reason, e.offset)
        for e in ref.outputs
    ]
    return rows, ref


mixed_streams = st.sampled_from([1, 2, 3, 3]).flatmap(
    lambda partitions: streams(
        keys=12, min_records=20, max_records=80, partitions=partitions, replays=True, strays=True
    )
)


def positions(records: list[InputRecord]) -> list[tuple[str, int, int]]:
    return [(r.key, r.partition, r.offset) for r in records]


@pytest.mark.parametrize("columns", [False, True], ids=["objects", "columns"])
@settings(max_examples=300, deadline=None)
@given(records=mixed_streams, batch=st.integers(1, 64), max_steps=st.sampled_from([0, 0, 1, 3, 5]))
def test_any_batching_gives_the_record_by_record_outputs(
    columns: bool, records: list[InputRecord], batch: int, max_steps: int
) -> None:
    """Several partitions, replayed offsets and strays on the wrong partition: whatever the
    batching (and so whichever engine path), the outputs, the skipped replays and the rejected
    records are the reference's; records given as objects or decoded from bytes into columns."""
    run = make_run(max_steps)
    got: list[Row] = []
    rejected: list[InputRecord] = []
    skipped = 0
    for i in range(0, len(records), batch):
        part = records[i : i + batch]
        if columns:
            times = np.zeros(len(part), np.float64)
            result = run.engine.process_batch(
                decoded_batch(part, times, run.engine.step_fn.n_features)
            )
        else:
            result = run.engine.process(part, 0.0)
        got += flatten(result.outputs)
        rejected += [r.record for r in result.rejected]
        skipped += result.skipped
    expected, ref = expected_rows(records, max_steps)
    assert per_key(got) == per_key(expected)
    assert set(run.table.active_keys()) == ref.live
    assert sorted(positions(rejected)) == sorted(positions(ref.rejected))
    assert skipped == ref.skipped


@pytest.mark.parametrize("columns", [False, True], ids=["objects", "columns"])
@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(st.integers(0, 3), min_size=1, max_size=150),
    batch=st.integers(1, 150),
    values=st.lists(st.integers(-5, 5), min_size=150, max_size=150),
)
def test_plain_samples_of_a_few_keys_give_the_reference_in_any_batching(
    columns: bool, keys: list[int], batch: int, values: list[int]
) -> None:
    """Single samples without flags, a few keys many times in a batch: the fast path's waves
    (one per repeat of a key) in the reference's order, however many repeats a batch holds."""
    records = [
        record(f"k{key}", offset, [[float(values[offset]), 1.0, float(key)]])
        for offset, key in enumerate(keys)
    ]
    run = make_run()
    got: list[Row] = []
    for i in range(0, len(records), batch):
        part = records[i : i + batch]
        if columns:
            times = np.zeros(len(part), np.float64)
            result = run.engine.process_batch(decoded_batch(part, times, 3))
        else:
            result = run.engine.process(part, 0.0)
        got += flatten(result.outputs)
    expected, _ = expected_rows(records)
    assert per_key(got) == per_key(expected)


def restored(run: Run, max_steps: int) -> Run:
    """A new worker with `max_steps`, its table rebuilt from the changelog records of `run`'s."""
    after = make_run(max_steps)
    table = run.table
    for key in table.active_keys():
        slot = table.slot_of(key)
        assert slot is not None
        value = changelog_codec.encode_state(table, key, "v")
        changelog_codec.apply_record(after.table, key, int(table.partition[slot]), value, "v")
    for key, gone in table.ended.items():
        value = changelog_codec.encode_ended(gone, "v")
        changelog_codec.apply_record(after.table, key, gone.partition, value, "v")
    return after


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    records=mixed_streams,
    batches=st.tuples(st.integers(1, 32), st.integers(1, 32)),
    limits=st.tuples(st.sampled_from([0, 2, 5]), st.sampled_from([0, 1, 3])),
)
def test_a_restart_with_another_max_steps_continues_as_the_reference(
    data: st.DataObject,
    records: list[InputRecord],
    batches: tuple[int, int],
    limits: tuple[int, int],
) -> None:
    """Stop anywhere, restore from the changelog into a worker with another --max-steps (often
    below the steps already taken), go on: the outputs are the reference's with the limit
    changed at that record, and the records before the stop are skipped when read again."""
    split = data.draw(st.integers(0, len(records)))
    again = data.draw(st.integers(0, split))  # the restarted worker reads from an older offset
    before = make_run(limits[0])
    got = before.feed(records[:split], batches[0])
    after = restored(before, limits[1])
    got += after.feed(records[again:split] + records[split:], batches[1])
    stream = records[:split] + records[again:split] + records[split:]
    expected, ref = expected_rows(stream, [limits[0]] * split + [limits[1]] * (len(stream) - split))
    assert per_key(got) == per_key(expected)
    assert set(after.table.active_keys()) == ref.live


def test_waves_never_hold_two_steps_of_one_key() -> None:
    seen: list[list[int]] = []

    class Recording(PrefixSumStep):
        def step(self, x: np.ndarray, states: list[np.ndarray]) -> np.ndarray:
            seen.append([int(c) for c in states[1][:, 0]])
            return super().step(x, states)

    step = Recording()
    table = StateTable(step.state_sizes, step.n_outputs)
    engine = Engine(step, table)
    records = [
        record("a", 0, [[1, 1, 1]] * 3),
        record("b", 1, [[2, 2, 2]]),
        record("a", 2, [[1, 1, 1]]),
    ]
    result = engine.process(records, 0.0)
    # b, alone in the batch with one sample, is stepped in one call with the other such keys;
    # a's four samples take four calls, each one step further.
    assert result.waves == 5
    assert seen == [[0], [0], [1], [2], [3]]


def test_bare_end_repeats_the_last_output_from_an_earlier_batch() -> None:
    run = make_run()
    run.feed([record("a", 0, [[1, 2, 3]]), record("a", 1, [[1, 1, 1]])], batch=2)
    got = run.feed([record("a", 2, [], end=True)], batch=1)
    assert got == [("a", 2, (9.0, 2.0), "end", 2)]
    assert "a" not in run.table
    assert run.table.ended["a"].offset == 2
    # The key has no state now: another end marker emits nothing.
    assert run.feed([record("a", 3, [], end=True)], batch=1) == []


def test_replayed_records_are_not_applied_twice() -> None:
    run = make_run()
    records = [record("a", 10, [[1, 0, 0]]), record("a", 11, [[1, 0, 0]], end=True),
               record("b", 12, [[2, 0, 0]])]  # fmt: skip
    run.feed(records, batch=3)
    result = run.engine.process(records, 1.0)  # the same records again, as after a crash
    assert len(result.outputs) == 0
    assert result.skipped == 3
    after = run.feed([record("b", 13, [[2, 0, 0]])], batch=1)
    assert after == [("b", 2, (4.0, 2.0), None, 13)]


def test_reset_drops_the_state_without_a_final_output() -> None:
    run = make_run()
    got = run.feed([record("a", 0, [[5, 5, 5]]), record("a", 1, [[1, 1, 1]], reset=True)], batch=1)
    assert got[-1] == ("a", 1, (3.0, 1.0), None, 1)
    result = run.engine.process([record("a", 2, [[1, 1, 1]], reset=True)], 0.0)
    assert result.ended["reset"] == 1 and result.started == 1


def test_idle_eviction_emits_a_final_output_and_frees_the_slot() -> None:
    run = make_run()
    run.feed([record("old", 0, [[1, 1, 1]])], batch=1, now=100.0)
    run.feed([record("new", 1, [[2, 2, 2]])], batch=1, now=200.0)
    result = run.engine.evict_idle(50.0, caught_up=[0], now=160.0)
    assert flatten(result.outputs) == [("old", 1, (3.0, 1.0), "idle_timeout", 0)]
    assert result.ended["idle_timeout"] == 1
    assert run.table.active_keys() == ["new"]
    assert "old" in run.table.take_dirty()
    # A late sample of the evicted key starts a new sequence.
    assert run.feed([record("old", 2, [[1, 1, 1]])], batch=1)[0][1] == 1


def test_table_grows_past_its_capacity_keeping_every_state() -> None:
    run = make_run(capacity=1)
    records = [record(f"k{i}", i, [[float(i), 0, 0]]) for i in range(100)]
    run.feed(records, batch=7)
    got = run.feed([record(f"k{i}", 100 + i, [[1, 0, 0]]) for i in range(100)], batch=100)
    assert [v[0] for _, _, v, _, _ in got] == [float(i + 1) for i in range(100)]
    assert run.table.capacity >= 100


def test_revoked_partitions_are_dropped() -> None:
    run = make_run()
    run.feed([record("a", 0, [[1, 1, 1]], partition=0), record("b", 0, [[1, 1, 1]], partition=1),
              record("c", 1, [[1, 1, 1]], partition=1, end=True)], batch=3)  # fmt: skip
    assert run.table.drop_partitions([1]) == 1
    assert run.table.active_keys() == ["a"]
    assert "c" not in run.table.ended


def test_negative_max_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        Engine(PrefixSumStep(), StateTable((3, 1), 2), max_steps=-1)


# --- a key seen on two partitions ------------------------------------------------------------


def test_a_key_on_another_partition_than_its_sequence_is_rejected_not_skipped() -> None:
    run = make_run()
    run.feed([record("a", 10, [[1, 1, 1]]), record("b", 3, [[1, 1, 1]], partition=1)], batch=2)
    stray = record("a", 4, [[5, 5, 5]], partition=1)  # offset 4 < 10, but of another partition
    result = run.engine.process([stray, record("b", 5, [[1, 1, 1]], partition=1),
                                 record("a", 11, [[1, 1, 1]])], 0.0)  # fmt: skip
    assert result.skipped == 0
    assert [(r.record, r.rejection.reason, r.rejection.sequence_partition)
            for r in result.rejected] == [(stray, "wrong_partition", 0)]  # fmt: skip
    assert per_key(flatten(result.outputs)) == {
        "a": [("a", 2, (6.0, 2.0), None, 11)],
        "b": [("b", 2, (6.0, 2.0), None, 5)],
    }


@pytest.mark.parametrize("rows", [1, 2], ids=["plain-sample path", "general path"])
def test_a_stray_record_with_a_newer_offset_leaves_the_sequence_untouched(rows: int) -> None:
    run = make_run()
    run.feed([record("a", 10, [[1, 1, 1]])], batch=1)
    stray = record("a", 50, [[5, 5, 5]] * rows, partition=1)
    result = run.engine.process([stray], 0.0)
    assert len(result.outputs) == 0
    assert [r.record for r in result.rejected] == [stray]
    assert run.feed([record("a", 11, [[1, 1, 1]])], batch=1) == [("a", 2, (6.0, 2.0), None, 11)]


def test_the_first_partition_of_a_new_key_in_a_batch_is_its_sequence_s() -> None:
    run = make_run()
    result = run.engine.process([record("c", 0, [[1, 1, 1]], partition=2),
                                 record("c", 0, [[2, 2, 2]], partition=3),
                                 record("c", 1, [[1, 1, 1]], partition=2)], 0.0)  # fmt: skip
    assert [(r.record.partition, r.rejection.sequence_partition) for r in result.rejected] == [
        (3, 2)
    ]
    assert [row[1] for row in flatten(result.outputs)] == [1, 2]


def test_a_record_on_another_partition_than_an_ended_sequence_is_rejected() -> None:
    run = make_run()
    run.feed([record("a", 10, [[1, 1, 1]], end=True)], batch=1)
    result = run.engine.process([record("a", 3, [[1, 1, 1]], partition=1)], 0.0)
    assert result.skipped == 0 and len(result.outputs) == 0
    assert [r.rejection.sequence_partition for r in result.rejected] == [0]


# --- max_steps lowered across a restart ------------------------------------------------------


def restored_with_max_steps(steps: dict[str, int], max_steps: int) -> Run:
    """Keys with `steps` samples each, scored without a limit, restored through the changelog
    into a worker that runs with `max_steps`."""
    before = make_run()
    for offset, (key, n) in enumerate(steps.items()):
        before.feed([record(key, offset, [[1, 1, 1]] * n)], batch=1)
    after = make_run(max_steps)
    for key in steps:
        value = changelog_codec.encode_state(before.table, key, "v")
        assert changelog_codec.apply_record(after.table, key, 0, value, "v") == "restored"
    return after


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_a_restored_sequence_at_or_past_a_lowered_max_steps_ends_on_its_next_sample(
    batch: int,
) -> None:
    run = restored_with_max_steps({"past": 5, "at": 3, "below": 1, "chunk": 4}, max_steps=3)
    got = run.feed([record("below", 10, [[1, 1, 1]]), record("past", 11, [[1, 1, 1]]),
                    record("at", 12, [[1, 1, 1]]), record("chunk", 13, [[1, 1, 1]] * 2)],
                   batch=batch)  # fmt: skip
    assert per_key(got) == {
        "below": [("below", 2, (6.0, 2.0), None, 10)],
        "past": [("past", 6, (18.0, 6.0), "max_steps", 11)],
        "at": [("at", 4, (12.0, 4.0), "max_steps", 12)],
        # The chunk's first sample ends the old sequence, its second starts a new one.
        "chunk": [("chunk", 5, (15.0, 5.0), "max_steps", 13), ("chunk", 1, (3.0, 1.0), None, 13)],
    }
    assert sorted(run.table.active_keys()) == ["below", "chunk"]
    assert run.feed([record("past", 14, [[1, 1, 1]])], batch=1) == [
        ("past", 1, (3.0, 1.0), None, 14)
    ]


# --- idleness on record time -------------------------------------------------------------------

TIMEOUT = 8.0
T0 = 1_764_000_000.0


def feed_at(run: Run, records: list[InputRecord], times: list[float]) -> list[Row]:
    return flatten(run.engine.process(records, times).outputs)


def test_downtime_longer_than_the_idle_timeout_does_not_split_sequences() -> None:
    """Samples 1-3 scored; the worker is down for twice the timeout while samples 4-6 are
    produced, each within the timeout of the previous one; it then works off the backlog in
    micro-batches smaller than the backlog, doing its chores (eviction) in between."""
    run = make_run()
    keys = [f"k{i}" for i in range(10)]
    offset = 0
    got: list[Row] = []
    for step in range(3):
        batch = [record(k, offset + i, [[1, 1, 1]]) for i, k in enumerate(keys)]
        got += feed_at(run, batch, [T0 + step] * len(batch))
        offset += len(batch)
    backlog = [record(k, offset + 10 * step + i, [[1, 1, 1]])
               for step in range(3) for i, k in enumerate(keys)]  # fmt: skip
    times = [T0 + 3 + i // len(keys) for i in range(len(backlog))]
    wall = T0 + 2 + 2 * TIMEOUT
    for i in range(0, len(backlog), 4):
        evicted = run.engine.evict_idle(TIMEOUT, caught_up=(), now=wall)  # partition 0 lags
        assert len(evicted.outputs) == 0
        got += feed_at(run, backlog[i : i + 4], times[i : i + 4])
        wall += 0.01
    assert {k: [row[1] for row in rows] for k, rows in per_key(got).items()} == {
        k: [1, 2, 3, 4, 5, 6] for k in keys
    }
    assert all(row[3] is None for row in got)
    # Caught up, and the producers have gone quiet: real idleness ends every sequence.
    assert len(run.engine.evict_idle(TIMEOUT, caught_up=[0], now=T0 + 5 + TIMEOUT).outputs) == 0
    final = flatten(run.engine.evict_idle(TIMEOUT, caught_up=[0], now=T0 + 6 + TIMEOUT).outputs)
    assert sorted(final) == [(k, 6, (18.0, 6.0), "idle_timeout", offset + 20 + i)
                             for i, k in enumerate(keys)]  # fmt: skip
    assert len(run.table) == 0


def test_a_partition_with_lag_never_evicts_a_caught_up_quiet_one_does() -> None:
    run = make_run()
    feed_at(run, [record("lagging", 0, [[1, 1, 1]], partition=0),
                  record("quiet", 0, [[1, 1, 1]], partition=1)], [T0, T0])  # fmt: skip
    result = run.engine.evict_idle(TIMEOUT, caught_up=[1], now=T0 + 100 * TIMEOUT)
    assert flatten(result.outputs) == [("quiet", 1, (3.0, 1.0), "idle_timeout", 0)]
    assert result.ended["idle_timeout"] == 1
    assert run.table.active_keys() == ["lagging"]


def test_idleness_is_judged_on_the_newest_record_time_of_the_key() -> None:
    run = make_run()
    # Record times, not processing order, decide: the later sample carries the newer time.
    feed_at(run, [record("a", 0, [[1, 1, 1]]), record("a", 1, [[1, 1, 1]])], [T0, T0 + 5])
    assert len(run.engine.evict_idle(TIMEOUT, caught_up=[0], now=T0 + 5 + TIMEOUT).outputs) == 0
    assert len(run.engine.evict_idle(TIMEOUT, caught_up=[0], now=T0 + 6 + TIMEOUT).outputs) == 1


def test_a_partition_s_record_time_ahead_of_the_wall_clock_is_its_clock() -> None:
    run = make_run()
    # A producer clock ahead of the worker's: the newest record on the partition sets the time.
    feed_at(run, [record("old", 0, [[1, 1, 1]]), record("new", 1, [[1, 1, 1]])],
            [T0, T0 + 3 * TIMEOUT])  # fmt: skip
    result = run.engine.evict_idle(TIMEOUT, caught_up=[0], now=T0)
    assert [row[0] for row in flatten(result.outputs)] == ["old"]


def test_a_reused_slot_does_not_inherit_its_last_key_s_time() -> None:
    run = make_run(capacity=1)
    feed_at(run, [record("old", 0, [[1, 1, 1]])], [T0 + 100])
    feed_at(run, [record("old", 1, [], end=True)], [T0 + 100])
    feed_at(run, [record("new", 2, [[1, 1, 1]])], [T0])  # in the slot "old" released
    result = run.engine.evict_idle(TIMEOUT, caught_up=[0], now=T0 + TIMEOUT + 1)
    assert [row[0] for row in flatten(result.outputs)] == ["new"]
