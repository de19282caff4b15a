"""The compiled LSTM cell loop against the numpy code it replaces: the same states and outputs,
bit for bit, for any shape and batch; and a clear error instead of a write outside an array."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer import native_choice
from consumer.model import _cell_loops, compiled_cells
from consumer.model.cells import LstmCell
from consumer.model.specs import RecurrentSpec


def _spec(units: int, n_inputs: int, seed: int, *, bias: bool = True) -> RecurrentSpec:
    rng = np.random.default_rng(seed)
    return RecurrentSpec(
        name="lstm",
        class_name="LSTM",
        kind="lstm",
        units=units,
        n_inputs=n_inputs,
        kernel=rng.normal(0.0, 1.0, (n_inputs, 4 * units)).astype(np.float32),
        recurrent_kernel=rng.normal(0.0, 1.0, (units, 4 * units)).astype(np.float32),
        bias=rng.normal(0.0, 1.0, 4 * units).astype(np.float32) if bias else None,
        activation="tanh",
        recurrent_activation="sigmoid",
        reset_after=False,
        return_sequences=False,
    )


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@settings(max_examples=60, deadline=None)
@given(
    units=st.integers(1, 40),
    n_inputs=st.integers(1, 6),
    batches=st.lists(st.integers(1, 80), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    bias=st.booleans(),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
)
def test_the_compiled_cell_equals_the_numpy_cell(
    *, units: int, n_inputs: int, batches: list[int], seed: int, bias: bool, scale: float
) -> None:
    spec = _spec(units, n_inputs, seed, bias=bias)
    numpy_cell, compiled_cell = LstmCell(spec, native=False), LstmCell(spec, native=True)
    assert compiled_cell.native and not numpy_cell.native
    rng = np.random.default_rng(seed + 1)
    # Buffers grow with the largest batch; smaller batches after it use part of them.
    for cell in (numpy_cell, compiled_cell):
        cell.ensure(max(batches))
    for rows in batches:
        x = rng.normal(0.0, scale, (rows, n_inputs)).astype(np.float32)
        h = rng.normal(0.0, scale, (rows, units)).astype(np.float32)
        c = rng.normal(0.0, scale, (rows, units)).astype(np.float32)
        states = [(h.copy(), c.copy()) for _ in range(2)]
        outs = [
            cell.run(x, s).copy()
            for cell, s in zip((numpy_cell, compiled_cell), states, strict=True)
        ]
        assert _bits(outs[0]) == _bits(outs[1])
        for a, b in zip(states[0], states[1], strict=True):
            assert _bits(a) == _bits(b)


def test_a_cell_with_other_activations_keeps_the_numpy_code() -> None:
    spec = _spec(4, 2, 0)
    other = RecurrentSpec(**{**spec.__dict__, "recurrent_activation": "hard_sigmoid"})
    assert not LstmCell(other, native=True).native


def test_a_cell_state_not_contiguous_takes_the_numpy_code() -> None:
    spec = _spec(5, 3, 1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    c = rng.normal(size=(6, 5)).astype(np.float32)
    results = []
    for native in (False, True):
        cell = LstmCell(spec, native=native)
        cell.ensure(6)
        h, column_major = np.zeros((6, 5), np.float32), np.asfortranarray(c)
        results.append((cell.run(x, (h, column_major)).copy(), column_major.copy()))
    assert _bits(results[0][0]) == _bits(results[1][0])
    assert _bits(results[0][1]) == _bits(results[1][1])


def test_shapes_that_do_not_fit_are_value_errors_and_nothing_is_written() -> None:
    gates = np.ones((4, 8, 3), np.float32)
    c = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="does not fit 9 rows"):
        _cell_loops.lstm_cell(gates, 9, np.ones((9, 3), np.float32))
    with pytest.raises(ValueError, match=r"c: \(2, 3\) does not fit 3 rows"):
        _cell_loops.lstm_cell(gates, 3, c)
    with pytest.raises(ValueError, match="units"):
        _cell_loops.lstm_cell(gates, 2, np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="gates: a"):
        _cell_loops.lstm_cell(np.ones((3, 8, 3), np.float32), 2, c)
    with pytest.raises(ValueError, match="gates: a"):
        _cell_loops.lstm_cell(np.ones((4, 8, 3), np.float64), 2, c)
    with pytest.raises(ValueError, match="c: a"):
        _cell_loops.lstm_cell(gates, 2, np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _cell_loops.lstm_cell(gates, 2, np.ones((3, 2), np.float32).T)
    with pytest.raises(TypeError, match="3 arguments"):
        _cell_loops.lstm_cell(gates, 2)  # type: ignore[call-arg]
    assert (gates == 1).all() and (c == 1).all()


def test_the_gates_and_cell_as_the_formula_has_them() -> None:
    rng = np.random.default_rng(3)
    gates = rng.uniform(-1, 1, (4, 5, 2)).astype(np.float32)
    c = rng.normal(size=(3, 2)).astype(np.float32)
    before, c_before = gates.copy(), c.copy()
    _cell_loops.lstm_cell(gates, 3, c)
    half = np.float32(0.5)
    sig = before[:3, :3] * half + half
    assert _bits(gates[:3, :3]) == _bits(sig)
    assert _bits(gates[:3, 3:]) == _bits(before[:3, 3:])  # rows past `rows` untouched
    assert _bits(gates[3]) == _bits(before[3])
    assert _bits(c) == _bits(c_before * sig[1] + sig[0] * before[3, :3])


def test_the_extension_is_built_where_the_tests_run() -> None:
    assert compiled_cells.BUILT, "consumer.model._cell_loops is missing: run make install"
    assert LstmCell(_spec(2, 1, 0)).native


def test_asking_for_an_extension_that_is_not_built_is_an_error() -> None:
    absent = native_choice.OptionalExtension("consumer.model._x")
    with pytest.raises(RuntimeError, match=r"consumer\.model\._x is not built: .*make install"):
        absent.choose(True)
    assert absent.choose(None) is False
    built = native_choice.OptionalExtension("consumer.model._cell_loops")
    assert built.choose(None) is True
    assert built.choose(False) is False
