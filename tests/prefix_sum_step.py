"""A tiny exact step function for testing the engine's bookkeeping without Keras.

Its state is the running sum of a sequence's features and its length; its outputs are the sum of
all features seen and the length. Any mistake in ordering, waves, resets or state gathering shows
up as a wrong sum or a wrong count, and float32 sums of small integers are exact.
"""

from __future__ import annotations

import numpy as np

from consumer.model.step import Float32Array


class PrefixSumStep:
    def __init__(self, n_features: int = 3) -> None:
        self._n_features = n_features

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def n_outputs(self) -> int:
        return 2

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self._n_features, 1)

    @property
    def version(self) -> str:
        return "prefixsum"

    def step(self, x: Float32Array, states: list[Float32Array]) -> Float32Array:
        sums, counts = states
        sums += x
        counts += 1.0
        return np.stack([sums.sum(axis=1), counts[:, 0]], axis=1).astype(np.float32)


def prefix_outputs(prefix: list[list[float]]) -> tuple[float, float]:
    """What PrefixSumStep outputs after the given prefix."""
    return float(sum(sum(row) for row in prefix)), float(len(prefix))
