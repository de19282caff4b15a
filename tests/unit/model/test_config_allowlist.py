"""The allowlist knows every option the installed Keras 3 and tf-keras write for each supported
layer: a Keras release that adds an option fails here, not as a refused model in production."""

from __future__ import annotations

from typing import Any

import keras
import pytest

from consumer.model.config_layers import OPTIONS

ARGS: dict[str, tuple[Any, ...]] = {
    "Activation": ("relu",),
    "Dropout": (0.1,),
    "SpatialDropout1D": (0.1,),
    "GaussianNoise": (0.1,),
    "GaussianDropout": (0.1,),
    "AlphaDropout": (0.1,),
}
COMMON = {"name", "trainable", "dtype"}


def example(module: Any, cls: str) -> Any:
    layers = module.layers
    if cls == "RNN":
        return layers.RNN(layers.LSTMCell(2))
    if cls == "TimeDistributed":
        return layers.TimeDistributed(layers.Dense(2))
    if cls in ("LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "Dense"):
        return getattr(layers, cls)(2)
    return getattr(layers, cls)(*ARGS.get(cls, ()))


@pytest.mark.parametrize("cls", sorted(OPTIONS))
def test_keras3_options_are_all_known(cls: str) -> None:
    written = set(example(keras, cls).get_config())
    assert written - COMMON - OPTIONS[cls] == set()


@pytest.mark.parametrize("cls", sorted(OPTIONS))
def test_keras2_options_are_all_known(cls: str) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    written = set(example(tf_keras, cls).get_config())
    assert written - COMMON - OPTIONS[cls] == set()
