"""The shared labelled generator: sequences of 3-feature samples whose label shows gradually.

Every sequence has a hidden baseline `b` shared by features 0 and 2, so neither says much alone:
  f0[k] = b + sign * m(k) + noise      (sign = +1 for label 1, -1 for label 0)
  f1[k] = label * A * sin(w * k + phi) + noise   (a weak hidden oscillation in positives)
  f2[k] = b + smaller noise           (a reference reading of the baseline)
The class separation `m(k)` starts modest and grows for the first few samples, then holds, so
evidence accumulates: one sample gives partial evidence (AUC about 0.7 for a good model), seven
give strong evidence (about 0.98), and any length is defined, the statistics staying those of
step 7 onwards. Deterministic for a given `numpy.random.Generator` state. Numpy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from consumer.model.step import Float32Array

N_FEATURES = 3
TRAINED_LENGTH = 7

_SEPARATION_START = 0.23
_SEPARATION_GROWTH = 0.04
_SEPARATION_MAX = _SEPARATION_START + _SEPARATION_GROWTH * (TRAINED_LENGTH - 1)
_BASELINE_SCALE = 1.0
_NOISE = 0.6
_REFERENCE_NOISE = 0.3
_OSCILLATION = 0.4
_FREQUENCY = (0.6, 1.2)  # radians per sample


def separation(steps: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Half the class difference of feature 0's mean at each step index (0-based)."""
    grown = _SEPARATION_START + _SEPARATION_GROWTH * steps.astype(np.float64)
    return np.minimum(grown, np.float64(_SEPARATION_MAX))


def _draw(rng: np.random.Generator, labels: npt.NDArray[np.int64], length: int) -> Float32Array:
    n = labels.shape[0]
    steps = np.arange(length)
    sign = (2 * labels - 1).astype(np.float64)[:, None]
    baseline = rng.normal(0.0, _BASELINE_SCALE, (n, 1))
    phase = rng.uniform(0.0, 2.0 * np.pi, (n, 1))
    frequency = rng.uniform(*_FREQUENCY, (n, 1))
    noise = rng.normal(0.0, 1.0, (n, length, N_FEATURES))
    x = np.empty((n, length, N_FEATURES), np.float64)
    x[:, :, 0] = baseline + sign * separation(steps)[None, :] + _NOISE * noise[:, :, 0]
    wave = np.sin(frequency * steps[None, :] + phase)
    x[:, :, 1] = labels[:, None] * _OSCILLATION * wave + _NOISE * noise[:, :, 1]
    x[:, :, 2] = baseline + _REFERENCE_NOISE * noise[:, :, 2]
    return x.astype(np.float32)


def generate(
    rng: np.random.Generator, n: int, length: int = TRAINED_LENGTH
) -> tuple[Float32Array, npt.NDArray[np.int64]]:
    """`n` labelled sequences: x `(n, length, 3)` float32 and y `(n,)` 0/1, balanced on average."""
    if n < 0 or length < 1:
        raise ValueError(f"need n >= 0 and length >= 1, got n={n}, length={length}")
    labels = rng.integers(0, 2, n).astype(np.int64)
    return _draw(rng, labels, length), labels


def sequence(rng: np.random.Generator, label: int, length: int) -> Float32Array:
    """One sequence `(length, 3)` float32 of the given label (0 or 1)."""
    if label not in (0, 1) or length < 1:
        raise ValueError(f"need label 0 or 1 and length >= 1, got {label}, {length}")
    one: Float32Array = _draw(rng, np.array([label], np.int64), length)[0]
    return one
