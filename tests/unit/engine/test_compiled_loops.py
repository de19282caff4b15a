"""The C extension's row and bookkeeping loops on their own: numpy's answers, and a clear error
instead of a write outside an array; and the table's per-batch stream time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.engine import _batch_loops
from consumer.engine.state_table import StateTable


def _tables() -> tuple[StateTable, StateTable]:
    pair = (StateTable((3, 2), 1, 8, native=False), StateTable((3, 2), 1, 8, native=True))
    rng = np.random.default_rng(4)
    for table in pair:
        for i, arr in enumerate(table.states):
            arr[:] = np.random.default_rng(i).normal(size=arr.shape)
        table.last_seen[:] = rng.integers(0, 5, len(table.last_seen))
        rng = np.random.default_rng(4)
    return pair


def test_rows_and_bookkeeping_as_numpy_has_them() -> None:
    numpy_table, compiled_table = _tables()
    slots = np.array([5, 0, 7, 2], np.intp)
    gathered = [t.gather_states(slots) for t in (numpy_table, compiled_table)]
    for a, b in zip(*gathered, strict=True):
        assert a.tobytes() == b.tobytes()
    rows = [r * 3 for r in gathered[0]]
    seen = np.array([np.nan, 1.0, 9.0, 0.0])
    outputs = np.arange(4, dtype=np.float32)[:, None]
    offsets = np.array([10, 11, 12, 13], np.int64)
    numpy_table.last_seen[0] = compiled_table.last_seen[0] = np.nan
    for table in (numpy_table, compiled_table):
        table.scatter_states(slots, rows)
        steps = table.record_one_step(slots, offsets, seen, outputs)
        assert steps.tolist() == [1, 1, 1, 1]
    for name in ("steps", "last_offset", "last_seen", "last_output", "changed"):
        assert getattr(compiled_table, name).tobytes() == getattr(numpy_table, name).tobytes()
    for a, b in zip(numpy_table.states, compiled_table.states, strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("slot", [-1, 8])
def test_a_slot_outside_the_table_is_an_index_error(slot: int) -> None:
    _, table = _tables()
    slots = np.array([1, slot], np.intp)
    with pytest.raises(IndexError, match=f"slot {slot} is outside the table's 8 rows"):
        table.gather_states(slots)
    with pytest.raises(IndexError, match="outside the table"):
        table.scatter_states(slots, [np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32)])
    with pytest.raises(IndexError, match="outside the table"):
        table.record_one_step(
            slots, np.zeros(2, np.int64), np.zeros(2), np.zeros((2, 1), np.float32)
        )
    # Checked before anything was written.
    assert table.steps.tolist() == [0] * 8
    assert table.gather_states(np.array([1], np.intp))[0].any()


def test_arrays_of_the_wrong_shape_or_type_are_refused() -> None:
    _, table = _tables()
    slots = np.array([1, 2], np.intp)
    with pytest.raises(ValueError, match="shape does not match"):
        _batch_loops.gather_rows(table.states, slots, [np.empty((1, 3), np.float32)] * 2)
    with pytest.raises(TypeError, match="2-D array of 4-byte items"):
        _batch_loops.gather_rows(table.states, slots, [np.empty((2, 3), np.float64)] * 2)
    with pytest.raises(TypeError, match="slots: items of 8 bytes"):
        _batch_loops.gather_rows(table.states, slots.astype(np.int32), table.states)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.floats(allow_nan=True, allow_infinity=True)),
        min_size=1,
        max_size=50,
    ),
    st.dictionaries(st.integers(0, 40), st.floats(allow_nan=False), max_size=5),
)
def test_stream_time_is_each_partitions_newest_record_time(
    records: list[tuple[int, float]], before: dict[int, float]
) -> None:
    """A partition's stream time moves to the newest of its records' times, never back (a NaN
    among them leaves it where it was, as numpy's max propagates it)."""
    table = StateTable((1,), 1, 4)
    table.stream_time.update(before)
    parts = np.array([p for p, _ in records], np.int64)
    times = np.array([t for _, t in records], np.float64)
    table.advance_stream_time(parts, times)
    expected = dict(before)
    for p in set(parts.tolist()):
        newest = float(times[parts == p].max())
        if newest > expected.get(p, -np.inf):
            expected[p] = newest
    assert table.stream_time == expected
