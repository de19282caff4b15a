"""NumpyStep, fed one sample at a time with states kept in arrays, equals the Keras model on
every prefix: the oracle is `model(x[:, :t], training=False)` for t = 1..T."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from consumer.model.numpy_step import CHUNK_ROWS, NumpyStep
from consumer.model.plan import build_plan
from tests import model_zoo
from tests.unit.model.conftest import zoo_model

TOLERANCE = 1e-5


def keras_prefix_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """(T, B, n): the model's output for every prefix, its last step when it returns sequences."""
    outputs = []
    for t in range(1, x.shape[1] + 1):
        y = np.asarray(model(x[:, :t], training=False))
        outputs.append(y[:, -1] if y.ndim == 3 else y)
    return np.stack(outputs)


def stream(step: NumpyStep, x: np.ndarray) -> np.ndarray:
    states = [np.zeros((x.shape[0], size), np.float32) for size in step.state_sizes]
    return np.stack([step.step(x[:, t], states).copy() for t in range(x.shape[1])])


@pytest.mark.parametrize("name", sorted(model_zoo.EXACTNESS_MODELS))
# No shrinking: each example runs Keras on every prefix, and shrinking a failure took minutes.
@settings(max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(1, 6),
    length=st.integers(1, 9),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
)
def test_numpy_step_equals_keras_on_every_prefix(
    name: str, seed: int, batch: int, length: int, scale: float
) -> None:
    model = zoo_model(name)
    plan = build_plan(model, name)
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, scale, (batch, length, plan.n_features)).astype(np.float32)
    expected = keras_prefix_outputs(model, x)
    got = stream(NumpyStep(plan), x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE)


def test_gates_saturate_in_the_exactness_models() -> None:
    """The random weights are large enough that sigmoid gates reach both ends (|v| > 5 gives
    a gate within 0.007 of 0 or 1) from the input alone, before the recurrent part adds more."""
    model = zoo_model("user")
    x = np.random.default_rng(0).normal(0.0, 1.0, (64, 7, 3)).astype(np.float32)
    layer = model.layers[0]
    pre = x @ np.asarray(layer.cell.kernel) + np.asarray(layer.cell.bias)
    assert (pre < -5.0).mean() > 0.005 and (pre > 5.0).mean() > 0.005


def test_large_batches_split_into_blocks_give_the_same_outputs_and_states() -> None:
    plan = build_plan(zoo_model("user"), "user")
    rows = CHUNK_ROWS * 2 + 37
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, (rows, 3)).astype(np.float32)
    whole = [rng.normal(0.0, 0.5, (rows, size)).astype(np.float32) for size in plan.state_sizes]
    parts = [state.copy() for state in whole]
    big = NumpyStep(plan).step(x, whole).copy()
    small_step = NumpyStep(plan)
    pieces = []
    for start in range(0, rows, 100):
        view = [state[start : start + 100] for state in parts]
        pieces.append(small_step.step(x[start : start + 100], view).copy())
    np.testing.assert_array_equal(big, np.concatenate(pieces))
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_array_equal(a, b)


def test_step_updates_states_in_place_and_leaves_input_alone() -> None:
    plan = build_plan(zoo_model("simple_rnn_relu_no_bias"), "rnn")
    step = NumpyStep(plan)
    x = np.ones((2, plan.n_features), np.float32)
    states = [np.zeros((2, size), np.float32) for size in plan.state_sizes]
    before = [id(state) for state in states]
    out = step.step(x, states)
    assert [id(state) for state in states] == before
    assert any(np.abs(state).sum() > 0 for state in states)
    np.testing.assert_array_equal(x, 1.0)
    assert out.shape == (2, 1) and out.dtype == np.float32
    for state in states:
        assert not np.shares_memory(out, state)


def test_wrong_shapes_are_rejected() -> None:
    step = NumpyStep(build_plan(zoo_model("user"), "user"))
    states = [np.zeros((1, size), np.float32) for size in step.state_sizes]
    with pytest.raises(ValueError, match="x must be"):
        step.step(np.zeros((1, 4), np.float32), states)
    with pytest.raises(ValueError, match="states"):
        step.step(np.zeros((1, 3), np.float32), states[:2])
