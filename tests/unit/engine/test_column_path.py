"""The column path (`Engine.process_batch` on a batch from `decode_batch`) against the object path
(`Engine.process` on the same records): the same outputs, bit for bit, and the same table after
(state, bookkeeping, ended keys, keys to write to the changelog), with replays, strays, flags,
chunks and repeated keys mixed in. Both against the reference: `test_scoring`."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.engine.results import BatchResult
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from consumer.model.numpy_step import NumpyStep
from consumer.model.plan import build_plan
from tests.stream_reference import decoded_batch, streams
from tests.unit.model.conftest import zoo_model

STEP = NumpyStep(build_plan(zoo_model("user"), "user"))
Output = tuple[str, int, int, str | None, int, bytes]


def _outputs(result: BatchResult) -> list[Output]:
    out = result.outputs
    return sorted(
        (
            key,
            out.offsets[i],
            out.steps[i],
            out.reasons[i],
            out.partitions[i],
            out.values[i].tobytes(),
        )
        for i, key in enumerate(out.keys)
    )


def _table(table: StateTable) -> dict[str, tuple[object, ...]]:
    state: dict[str, tuple[object, ...]] = {}
    for key in table.active_keys():
        slot = table.slot_of(key)
        assert slot is not None
        state[key] = (
            *(arr[slot].tobytes() for arr in table.states),
            int(table.steps[slot]),
            int(table.last_offset[slot]),
            float(table.last_seen[slot]),
            int(table.partition[slot]),
        )
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_column_path_equals_the_object_path(data: st.DataObject) -> None:
    values = st.integers(-20, 20).map(lambda v: v / 4)
    records = data.draw(
        streams(values=values, keys=10, max_records=120, partitions=2, replays=True, strays=True)
    )
    size = data.draw(st.integers(1, 40))
    by_objects = Engine(STEP, StateTable(STEP.state_sizes, STEP.n_outputs))
    by_columns = Engine(STEP, StateTable(STEP.state_sizes, STEP.n_outputs))
    for start in range(0, len(records), size):
        batch = records[start : start + size]
        times = np.arange(start, start + len(batch), dtype=np.float64)
        expected = by_objects.process(batch, times)
        got = by_columns.process_batch(decoded_batch(batch, times, STEP.n_features))
        assert _outputs(got) == _outputs(expected)
        assert (got.samples, got.skipped, got.started, got.ended) == (
            expected.samples,
            expected.skipped,
            expected.started,
            expected.ended,
        )
        assert sorted((r.record.key, r.record.offset) for r in got.rejected) == sorted(
            (r.record.key, r.record.offset) for r in expected.rejected
        )
        assert _table(by_columns.table) == _table(by_objects.table)
        assert by_columns.table.ended == by_objects.table.ended
        assert by_columns.table.dirty == by_objects.table.dirty
        assert by_columns.table.stream_time == by_objects.table.stream_time


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_loops_equal_the_numpy_code(data: st.DataObject) -> None:
    """The column path with the C extension's lookups, state rows and bookkeeping against the
    same path in numpy: the same outputs and tables, bit for bit."""
    values = st.integers(-20, 20).map(lambda v: v / 4)
    records = data.draw(
        streams(values=values, keys=40, max_records=200, partitions=3, replays=True, strays=True)
    )
    size = data.draw(st.integers(1, 64))
    engines = [
        Engine(STEP, StateTable(STEP.state_sizes, STEP.n_outputs, 4, native=native))
        for native in (False, True)
    ]
    for start in range(0, len(records), size):
        batch = records[start : start + size]
        times = np.arange(start, start + len(batch), dtype=np.float64)[::-1].copy()
        numpy_result, compiled_result = (
            e.process_batch(decoded_batch(batch, times, STEP.n_features)) for e in engines
        )
        assert _outputs(compiled_result) == _outputs(numpy_result)
        numpy_table, compiled_table = (e.table for e in engines)
        assert _table(compiled_table) == _table(numpy_table)
        assert compiled_table.dirty == numpy_table.dirty
        hw = numpy_table._high_water
        assert np.array_equal(compiled_table.last_output[:hw], numpy_table.last_output[:hw])
        assert np.array_equal(compiled_table.changed, numpy_table.changed)
