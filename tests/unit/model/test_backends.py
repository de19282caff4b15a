"""The two Keras reference backends agree with NumpyStep, outputs and states, step by step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consumer.model import BACKENDS, StepFunction, load_step_function


def run(step: StepFunction, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    states = [np.zeros((x.shape[0], size), np.float32) for size in step.state_sizes]
    outputs = np.stack([step.step(x[:, t], states).copy() for t in range(x.shape[1])])
    return outputs, states


@pytest.mark.parametrize("name", ["user", "gru_reset_after_then_lstm"])
def test_keras_backends_agree_with_numpy(saved_models: dict[str, Path], name: str) -> None:
    steps = {backend: load_step_function(saved_models[name], backend) for backend in BACKENDS}
    reference = steps["numpy"]
    x = np.random.default_rng(7).normal(0.0, 1.5, (5, 6, reference.n_features))
    x = x.astype(np.float32)
    expected, expected_states = run(reference, x)
    for backend in ("keras-batched", "keras-stateful"):
        step = steps[backend]
        assert (step.n_features, step.n_outputs, step.state_sizes, step.version) == (
            reference.n_features,
            reference.n_outputs,
            reference.state_sizes,
            reference.version,
        )
        outputs, states = run(step, x)
        np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
        for got, want in zip(states, expected_states, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_keras_batched_accepts_any_batch_size(saved_models: dict[str, Path]) -> None:
    step = load_step_function(saved_models["user"], "keras-batched")
    numpy_step = load_step_function(saved_models["user"], "numpy")
    for rows in (1, 3, 8, 5):
        x = np.full((rows, 3), 0.25 * rows, np.float32)
        states = [np.full((rows, size), 0.1, np.float32) for size in step.state_sizes]
        numpy_states = [state.copy() for state in states]
        np.testing.assert_allclose(
            step.step(x, states), numpy_step.step(x, numpy_states), rtol=1e-5, atol=1e-5
        )


def test_unknown_backend_is_refused(saved_models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        load_step_function(saved_models["user"], "torch")  # type: ignore[arg-type]
