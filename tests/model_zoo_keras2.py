"""Keras 2 models (tf-keras) with the architectures of `model_zoo`, as far as Keras 2 has them,
saved as real Keras 2 `.h5` files at test time. Keras 2 has no `log_softmax` activation and its
`hard_sigmoid` differs from Keras 3's (refused), so those two are swapped for softmax and sigmoid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tf_keras
from tf_keras import layers

Builder = Callable[[], Any]


def randomize(model: Any, seed: int, scale: float = 1.5) -> Any:
    """`model_zoo.randomize` for Keras 2 variables (named `.../moving_variance:0`)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.name:
            value = rng.uniform(0.2, 2.0, shape)
        elif "gamma" in weight.name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, scale, shape)
        weight.assign(value.astype(np.float32))
    return model


def _sequential(n_features: int, stack: list[Any], length: int | None = None) -> Any:
    return tf_keras.Sequential([tf_keras.Input((length, n_features)), *stack])


def user_original_minus_flatten(seed: int = 0) -> Any:
    """The user's layer list as they wrote it, Flatten removed: the head reads every step."""
    stack = [
        layers.LSTM(32, return_sequences=True),
        layers.LeakyReLU(),
        layers.Dropout(0.2),
        layers.LSTM(16, return_sequences=True),
        layers.Dropout(0.2),
        layers.LeakyReLU(),
        layers.Dense(1, activation="sigmoid"),
    ]
    return randomize(_sequential(3, stack, length=7), seed, 1.0)


def user_model(seed: int = 0) -> Any:
    stack = [
        layers.LSTM(32, return_sequences=True),
        layers.LeakyReLU(),
        layers.Dropout(0.2),
        layers.LSTM(16),
        layers.Dropout(0.2),
        layers.LeakyReLU(),
        layers.Dense(1, activation="sigmoid"),
    ]
    return randomize(_sequential(3, stack, length=7), seed, 1.0)


def gru_then_lstm(seed: int = 1, reset_after: bool = True) -> Any:
    stack = [
        layers.GRU(6, return_sequences=True, reset_after=reset_after),
        layers.LSTM(5),
        layers.Dense(2),
    ]
    return randomize(_sequential(4, stack), seed)


def simple_rnn_relu(seed: int = 2) -> Any:
    stack = [
        layers.SimpleRNN(7, activation="relu", use_bias=False, return_sequences=True),
        layers.SimpleRNN(3),
        layers.Dense(1, activation="tanh"),
    ]
    return randomize(_sequential(2, stack), seed, scale=0.6)


def normalized(seed: int = 3) -> Any:
    stack = [
        layers.BatchNormalization(),
        layers.LSTM(8, return_sequences=True),
        layers.LayerNormalization(),
        layers.GRU(4, reset_after=False),
        layers.BatchNormalization(),
        layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2),
        layers.Dense(2),
    ]
    return randomize(_sequential(5, stack), seed, scale=0.8)


def sequence_head_time_distributed(seed: int = 4) -> Any:
    inputs = tf_keras.Input((None, 3))
    x = layers.LSTM(6, return_sequences=True)(inputs)
    x = layers.ELU(alpha=0.7)(x)
    x = layers.TimeDistributed(layers.Dense(1, activation="sigmoid"))(x)
    return randomize(tf_keras.Model(inputs, x), seed)


def sequence_head_dense_softmax(seed: int = 5) -> Any:
    stack = [
        layers.GRU(6, return_sequences=True),
        layers.Activation("swish"),
        layers.Dense(4),
        layers.Softmax(),
    ]
    return randomize(_sequential(3, stack), seed)


def rnn_cell_wrapper(seed: int = 6) -> Any:
    stack = [
        layers.RNN(
            layers.LSTMCell(5, activation="softsign", recurrent_activation="sigmoid"),
            return_sequences=True,
        ),
        layers.RNN(layers.GRUCell(4, activation="elu")),
        layers.Dense(3, activation="softmax"),
    ]
    return randomize(_sequential(3, stack), seed)


def stateless(seed: int = 7) -> Any:
    return randomize(_sequential(3, [layers.Dense(4, activation="gelu"), layers.Dense(1)]), seed)


def hard_sigmoid_gates(seed: int = 8) -> Any:
    stack = [layers.LSTM(3, recurrent_activation="hard_sigmoid", name="gates"), layers.Dense(1)]
    return randomize(_sequential(3, stack), seed)


KERAS2_MODELS: dict[str, Builder] = {
    "user_original_minus_flatten": user_original_minus_flatten,
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
