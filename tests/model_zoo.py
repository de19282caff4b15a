"""Small Keras models for tests, with random weights scaled up so that gates saturate sometimes.

Every builder takes a seed so a model is reproducible, and
`randomize` overwrites all weights (moving statistics included) with seeded random values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import layers

Builder = Callable[[], Any]


def randomize(model: Any, seed: int, scale: float = 1.5) -> Any:
    """Sets every weight to seeded random values; variances stay positive."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            value = rng.uniform(0.2, 2.0, shape)
        elif "gamma" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, scale, shape)
        weight.assign(value.astype(np.float32))
    return model


def _sequential(n_features: int, layers: list[Any], length: int | None = None) -> Any:

    return keras.Sequential([keras.Input((length, n_features)), *layers])


def user_model(seed: int = 0, scale: float = 1.0) -> Any:
    """The user's architecture, with Flatten removed: the last LSTM returns its last output."""

    model = _sequential(
        3,
        [
            layers.LSTM(32, return_sequences=True),
            layers.LeakyReLU(),
            layers.Dropout(0.2),
            layers.LSTM(16),
            layers.Dropout(0.2),
            layers.LeakyReLU(),
            layers.Dense(1, activation="sigmoid"),
        ],
        length=7,
    )
    return randomize(model, seed, scale)


def gru_then_lstm(seed: int = 1, reset_after: bool = True) -> Any:

    model = _sequential(
        4,
        [
            layers.GRU(6, return_sequences=True, reset_after=reset_after),
            layers.LSTM(5),
            layers.Dense(2),
        ],
    )
    return randomize(model, seed)


def simple_rnn_relu(seed: int = 2) -> Any:

    model = _sequential(
        2,
        [
            layers.SimpleRNN(7, activation="relu", use_bias=False, return_sequences=True),
            layers.SimpleRNN(3),
            layers.Dense(1, activation="tanh"),
        ],
    )
    return randomize(model, seed, scale=0.6)


def normalized(seed: int = 3) -> Any:
    """BatchNormalization and LayerNormalization between recurrent layers and in the head."""

    model = _sequential(
        5,
        [
            layers.BatchNormalization(),
            layers.LSTM(8, return_sequences=True),
            layers.LayerNormalization(),
            layers.GRU(4, reset_after=False),
            layers.BatchNormalization(name="spread"),
            layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2),
            layers.Dense(2),
        ],
    )
    randomize(model, seed, scale=0.8)
    # Spread the GRU output (in -1..1) over -2.5..2.5 so the ReLU's negative slope, threshold
    # and max value all come into play.
    spread = model.get_layer("spread")
    spread.gamma.assign(np.full(4, 2.5, np.float32))
    spread.beta.assign(np.zeros(4, np.float32))
    spread.moving_mean.assign(np.zeros(4, np.float32))
    spread.moving_variance.assign(np.full(4, 0.9, np.float32))
    return model


def sequence_head_time_distributed(seed: int = 4) -> Any:
    """The last recurrent layer returns sequences; the head is TimeDistributed(Dense)."""

    inputs = keras.Input((None, 3))
    x = layers.LSTM(6, return_sequences=True)(inputs)
    x = layers.ELU(alpha=0.7)(x)
    x = layers.TimeDistributed(layers.Dense(1, activation="sigmoid"))(x)
    return randomize(keras.Model(inputs, x), seed)


def sequence_head_dense_softmax(seed: int = 5) -> Any:
    """The last recurrent layer returns sequences under a plain Dense with a softmax head."""

    model = _sequential(
        3,
        [
            layers.GRU(6, return_sequences=True),
            layers.Activation("swish"),
            layers.Dense(4),
            layers.Softmax(),
        ],
    )
    return randomize(model, seed)


def rnn_cell_wrapper(seed: int = 6) -> Any:
    """keras.layers.RNN over single cells, with non-default activations."""

    model = _sequential(
        3,
        [
            layers.RNN(
                layers.LSTMCell(5, activation="softsign", recurrent_activation="hard_sigmoid"),
                return_sequences=True,
            ),
            layers.RNN(layers.GRUCell(4, activation="elu")),
            layers.Dense(3, activation="log_softmax"),
        ],
    )
    return randomize(model, seed)


def stateless(seed: int = 7) -> Any:
    """No recurrent layer: purely per-step."""

    model = _sequential(3, [layers.Dense(4, activation="gelu"), layers.Dense(1)])
    return randomize(model, seed)


def amplifying(seed: int = 0) -> Any:
    """A relu SimpleRNN feeding a GRU, Keras' initial weights scaled up 2.5x: the relu recurrence
    grows its state about 2.5x a step, and float32 rounding with it, so Keras float32 itself
    drifts from a float64 evaluation by more than 1e-5 within ten steps."""
    keras.utils.set_random_seed(seed)
    model = _sequential(
        3,
        [
            layers.SimpleRNN(16, activation="relu", return_sequences=True),
            layers.GRU(8),
            layers.Dense(1, activation="sigmoid"),
        ],
    )
    for weight in model.weights:
        weight.assign(np.asarray(weight) * np.float32(2.5))
    return model


def float64_twin(model: Any) -> Any:
    """The same model computing in float64 throughout, with the same (widened) weights."""
    config = model.get_config()
    for layer in config["layers"]:
        dtype = layer["config"].get("dtype")
        if isinstance(dtype, dict):
            dtype["config"]["name"] = "float64"
        elif dtype is not None:
            layer["config"]["dtype"] = "float64"
    twin = keras.Sequential.from_config(config)
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


EXACTNESS_MODELS: dict[str, Builder] = {
    "user": user_model,
    "gru_reset_after_then_lstm": lambda: gru_then_lstm(reset_after=True),
    "gru_reset_before_then_lstm": lambda: gru_then_lstm(seed=11, reset_after=False),
    "simple_rnn_relu_no_bias": simple_rnn_relu,
    "normalized": normalized,
    "sequence_time_distributed": sequence_head_time_distributed,
    "sequence_dense_softmax": sequence_head_dense_softmax,
    "rnn_cells": rnn_cell_wrapper,
    "stateless": stateless,
}
