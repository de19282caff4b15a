"""The models the benchmarks run: the user's streamable architecture and the original window model.

Weights are random: the cost of a step does not depend on their values, and a fixed seed keeps
runs comparable. A trained file can be passed instead (`--model`).
"""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from consumer.training import synthetic

WINDOW = synthetic.TRAINED_LENGTH


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def save_streaming_model(path: Path, seed: int = 7) -> Path:
    """The deployed architecture (the user's, without Flatten) with random weights."""
    keras = _keras()
    from consumer.training.train import build_model

    keras.utils.set_random_seed(seed)
    build_model(every_step=False).save(path)
    return path


def window_model(seed: int = 7) -> Any:
    """The user's original model, Flatten included: it only ever reads exactly WINDOW steps."""
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((WINDOW, synthetic.N_FEATURES)),
            layers.LSTM(32, return_sequences=True),
            layers.LeakyReLU(),
            layers.Dropout(0.2),
            layers.LSTM(16, return_sequences=True),
            layers.Dropout(0.2),
            layers.LeakyReLU(),
            layers.Flatten(),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="user_window_model",
    )
