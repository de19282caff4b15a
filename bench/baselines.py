"""The user's first idea, as a scorer: per sample, the key's last WINDOW samples, zero-padded in
front while the sequence is shorter, go through the Flatten model in one batch-1 call.

The call is a compiled `tf.function` with a fixed signature, the fastest way to call a Keras
model on one window (`predict` costs tens of milliseconds more per call), so the baseline is
measured at its best.
"""

# ruff: noqa: PLC0415  (TensorFlow is imported lazily: importing it costs seconds)

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.models import WINDOW
from consumer.codecs.inputs import InputRecord
from consumer.model.step import Float32Array


class PaddedWindowScorer:
    """Key -> its window of the latest samples; one model call per sample."""

    def __init__(self, model: Any, n_features: int) -> None:
        import tensorflow as tf

        self.n_features = n_features
        self._windows: dict[str, Float32Array] = {}
        spec = tf.TensorSpec([1, WINDOW, n_features], tf.float32)
        self._call = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def window(self, key: str) -> Float32Array:
        """The key's current window (zeros where no sample has arrived yet)."""
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = np.zeros((1, WINDOW, self.n_features), np.float32)
        return found

    def score(self, records: Sequence[InputRecord]) -> Float32Array:
        """One probability per sample, in record order."""
        out: list[float] = []
        for rec in records:
            win = self.window(rec.key)
            for row in rec.features:
                win[0, :-1] = win[0, 1:]  # the oldest step leaves, the new one enters last
                win[0, -1] = row
                out.append(float(np.asarray(self._call(win)).reshape(-1)[0]))
            if rec.end:
                del self._windows[rec.key]
        return np.asarray(out, np.float32)
