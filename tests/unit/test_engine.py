"""The engine against a plain, record-by-record statement of the semantics in the design."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.batch_result import Outputs
from consumer.engine import Engine
from consumer.messages import InputRecord
from consumer.state import StateTable
from tests.prefix_sum_step import PrefixSumStep, prefix_outputs
from tests.stream_reference import record, reference, streams

Row = tuple[str, int, tuple[float, float], str | None, int]


def expected_rows(records: list[InputRecord], max_steps: int = 0) -> tuple[list[Row], set[str]]:
    outputs, live = reference(records, max_steps)
    rows = [
        (e.key, e.step, prefix_outputs([list(r) for r in e.prefix]), e.reason, e.offset)
        for e in outputs
    ]
    return rows, live


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


@settings(max_examples=300, deadline=None)
@given(records=streams(), batch=st.integers(1, 64), max_steps=st.sampled_from([0, 0, 1, 3, 5]))
def test_any_batching_gives_the_record_by_record_outputs(
    records: list[InputRecord], batch: int, max_steps: int
) -> None:
    run = make_run(max_steps)
    got = run.feed(records, batch)
    expected, live = expected_rows(records, max_steps)
    assert per_key(got) == per_key(expected)
    assert set(run.table.active_keys()) == live


def test_waves_never_hold_two_steps_of_one_key() -> None:
    seen: list[list[int]] = []

    class Recording(PrefixSumStep):
        def step(self, x: np.ndarray, states: list[np.ndarray]) -> np.ndarray:  # type: ignore[type-arg]
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
    result = run.engine.evict_idle(before=150.0)
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
