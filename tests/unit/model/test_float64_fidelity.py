"""Where float32 rounding grows over the steps, Keras float32 is no oracle within 1e-5: it drifts
from the exact result itself. There the numpy step's distance to a float64 evaluation of the same
model stays within twice Keras float32's own, in the worst case and in RMS."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.model.numpy_step import NumpyStep
from consumer.model.plan import build_plan
from tests import model_zoo

SEQUENCES, STEPS = 512, 16


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_step_drifts_from_float64_no_more_than_twice_keras_float32(seed: int) -> None:
    model = model_zoo.amplifying(seed)
    exact = model_zoo.float64_twin(model)
    x = np.random.default_rng(seed).normal(0.0, 1.0, (SEQUENCES, STEPS, 3)).astype(np.float32)
    step = NumpyStep(build_plan(model, "amplifying"))
    states = [np.zeros((SEQUENCES, size), np.float32) for size in step.state_sizes]
    keras_error, step_error = [], []
    for t in range(1, STEPS + 1):
        ours = step.step(np.ascontiguousarray(x[:, t - 1]), states)[:, 0].astype(np.float64)
        keras32 = np.asarray(model(x[:, :t], training=False))[:, 0].astype(np.float64)
        keras64 = np.asarray(exact(x[:, :t].astype(np.float64), training=False))[:, 0]
        keras_error.append(np.abs(keras32 - keras64))
        step_error.append(np.abs(ours - keras64))
    k, s = np.asarray(keras_error), np.asarray(step_error)
    assert k[9:].max() > 1e-5, "the model must amplify rounding for this test to mean anything"
    assert s.max() <= 2 * k.max(), f"worst case {s.max():.3g} vs Keras float32 {k.max():.3g}"

    def rms(e: np.ndarray) -> float:
        return float(np.sqrt(np.mean(e**2)))

    assert rms(s) <= 2 * rms(k), f"RMS {rms(s):.3g} vs Keras float32 {rms(k):.3g}"
