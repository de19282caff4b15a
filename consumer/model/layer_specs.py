"""One Keras layer to its step-plan record, or the reasons it cannot be streamed."""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from consumer.model import activations
from consumer.model.chain import ChainLink, label
from consumer.model.specs import (
    ActivationSpec,
    AffineSpec,
    DenseSpec,
    EluSpec,
    IdentitySpec,
    LayerNormSpec,
    LayerSpec,
    RecurrentKind,
    RecurrentSpec,
    ReluSpec,
)
from consumer.model.step import Float32Array

SUPPORTED_TEXT = (
    "LSTM, GRU, SimpleRNN, RNN(LSTMCell | GRUCell | SimpleRNNCell), Dense, "
    "TimeDistributed(<per-step layer>), LeakyReLU, ReLU, ELU, Activation, Softmax, "
    "BatchNormalization, LayerNormalization, Dropout and noise layers, and InputLayer"
)

RECURRENT_CLASSES: dict[str, RecurrentKind] = {
    "LSTM": "lstm",
    "GRU": "gru",
    "SimpleRNN": "simple_rnn",
}
CELL_CLASSES: dict[str, RecurrentKind] = {
    "LSTMCell": "lstm",
    "GRUCell": "gru",
    "SimpleRNNCell": "simple_rnn",
}
IDENTITY_CLASSES = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
    }
)

_RETRAIN = "retrain without it"
_TIME_MIXING: dict[str, str] = {
    "Flatten": (
        "mixes the time axis into features, so the model can only ever read a fixed window; "
        "retrain without it: let the last recurrent layer return only its last output "
        "(return_sequences=False) and put the Dense head on that"
    ),
    "Bidirectional": (
        "also reads the sequence backwards, so every output depends on samples that have not "
        "arrived yet; retrain with a forward-only recurrent layer"
    ),
    "Masking": (
        "skips masked time steps, which a stream of real samples never has; send only real "
        f"samples and {_RETRAIN}"
    ),
}
for _conv in (
    "Conv1D",
    "Conv1DTranspose",
    "SeparableConv1D",
    "DepthwiseConv1D",
    "ConvLSTM1D",
    "LocallyConnected1D",
):
    _TIME_MIXING[_conv] = (
        "convolves over neighbouring time steps, a window a one-sample-at-a-time stream does "
        f"not have; {_RETRAIN} (a recurrent layer can take its place)"
    )
for _pool in (
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "AveragePooling1D",
    "MaxPooling1D",
):
    _TIME_MIXING[_pool] = (
        "pools over the time axis, so its output depends on the whole window; "
        f"{_RETRAIN}: let the last recurrent layer return only its last output "
        "(return_sequences=False)"
    )
for _attention in ("Attention", "AdditiveAttention", "MultiHeadAttention", "GroupQueryAttention"):
    _TIME_MIXING[_attention] = (
        f"attends across time steps, so every output depends on the whole window; {_RETRAIN}"
    )
for _shape_layer in ("Reshape", "Permute", "RepeatVector", "Cropping1D", "ZeroPadding1D"):
    _TIME_MIXING[_shape_layer] = (
        "reshapes or moves the time axis, which mixes steps and features; " + _RETRAIN
    )
_TIME_MIXING["UpSampling1D"] = _TIME_MIXING["Reshape"]
TIME_MIXING = _TIME_MIXING  # for the config-only reader (config_layers)


def class_name(layer: Any) -> str:
    return type(layer).__name__


def is_builtin(layer: Any) -> bool:
    return type(layer).__module__.startswith("keras.")


def to_float32(value: Any) -> Float32Array:
    from keras import ops

    return np.ascontiguousarray(ops.convert_to_numpy(value), dtype=np.float32)


def layer_spec(link: ChainLink) -> LayerSpec | list[str]:
    """The plan record for one link of the chain, or every reason it is refused."""
    layer = link.layer
    cls = class_name(layer)
    if not is_builtin(layer):
        return [f"layer {label(layer)} is not a built-in Keras layer: only {SUPPORTED_TEXT}"]
    if cls in _TIME_MIXING:
        return [f"layer {label(layer)} {_TIME_MIXING[cls]}"]
    reasons = _dtype_reasons(layer)
    if cls in RECURRENT_CLASSES or cls == "RNN":
        found = _recurrent(layer)
    else:
        found = per_step(layer, link.layer.name, len(link.input_shape))
    if isinstance(found, list):
        return reasons + found
    return reasons or found


def per_step(layer: Any, name: str, ndim: int) -> LayerSpec | list[str]:
    """A layer applied to each time step on its own (`ndim` is its input's rank)."""
    cls = class_name(layer)
    if cls in IDENTITY_CLASSES:
        return IdentitySpec(name, cls)
    if cls == "Dense":
        return _dense(layer, name, cls)
    if cls == "TimeDistributed":
        return _time_distributed(layer, name)
    if cls == "Activation":
        return _activation(layer, name, cls, layer.get_config()["activation"])
    if cls == "LeakyReLU":
        return ReluSpec(name, cls, float(layer.negative_slope), None, 0.0)
    if cls == "ReLU":
        max_value = None if layer.max_value is None else float(layer.max_value)
        return ReluSpec(name, cls, float(layer.negative_slope), max_value, float(layer.threshold))
    if cls == "ELU":
        return EluSpec(name, cls, float(layer.alpha))
    if cls == "Softmax":
        if not _is_last_axis(layer.axis, ndim):
            return [f"layer {label(layer)} takes softmax over axis {layer.axis}: only the last"]
        return ActivationSpec(name, cls, "softmax")
    if cls == "BatchNormalization":
        return _batch_norm(layer, name, ndim)
    if cls == "LayerNormalization":
        return _layer_norm(layer, name, ndim)
    if cls in RECURRENT_CLASSES or cls == "RNN":
        return [f"layer {label(layer)} is recurrent: it cannot be wrapped in TimeDistributed"]
    return [f"unsupported layer {label(layer)}: only {SUPPORTED_TEXT} are supported"]


def _dtype_reasons(layer: Any) -> list[str]:
    dtype = getattr(layer, "compute_dtype", "float32")
    if dtype != "float32":
        return [f"layer {label(layer)} computes in {dtype}: only float32 models are supported"]
    return []


def _activation_name(layer: Any, configured: Any) -> tuple[str | None, list[str]]:
    if isinstance(configured, str) and configured in activations.SUPPORTED:
        return configured, []
    shown = configured.get("config", configured) if isinstance(configured, dict) else configured
    return None, [
        f"layer {label(layer)} uses activation {shown!r}, which cannot be evaluated here: "
        f"supported are {', '.join(sorted(activations.SUPPORTED))}"
    ]


def _activation(layer: Any, name: str, cls: str, configured: Any) -> LayerSpec | list[str]:
    activation, reasons = _activation_name(layer, configured)
    if activation is None:
        return reasons
    return ActivationSpec(name, cls, activation)


def _recurrent(layer: Any) -> LayerSpec | list[str]:
    cls = class_name(layer)
    cell = layer.cell
    cell_cls = class_name(cell)
    reasons: list[str] = []
    if cls == "RNN" and (cell_cls not in CELL_CLASSES or not is_builtin(cell)):
        what = "stacks several cells" if cell_cls == "StackedRNNCells" else "wraps a cell"
        return [
            f"layer {label(layer)} {what} (class {cell_cls}): only RNN over a single LSTMCell, "
            "GRUCell or SimpleRNNCell is supported; use one recurrent layer per cell"
        ]
    kind = CELL_CLASSES[cell_cls] if cls == "RNN" else RECURRENT_CLASSES[cls]
    if layer.go_backwards:
        reasons.append(
            f"layer {label(layer)} reads the sequence backwards (go_backwards=True), so its "
            "output depends on samples that have not arrived yet; retrain with go_backwards=False"
        )
    if layer.return_state:
        reasons.append(
            f"layer {label(layer)} returns its states (return_state=True): the model must have "
            "a single output"
        )
    config = cell.get_config()
    activation, problems = _activation_name(layer, config["activation"])
    reasons.extend(problems)
    recurrent_activation: str | None = None
    if kind != "simple_rnn":
        recurrent_activation, problems = _activation_name(layer, config["recurrent_activation"])
        reasons.extend(problems)
    if reasons or activation is None:
        return reasons
    kernel = to_float32(cell.kernel)
    return RecurrentSpec(
        name=layer.name,
        class_name=cls if cls != "RNN" else f"RNN({cell_cls})",
        kind=kind,
        units=int(cell.units),
        n_inputs=int(kernel.shape[0]),
        kernel=kernel,
        recurrent_kernel=to_float32(cell.recurrent_kernel),
        bias=to_float32(cell.bias) if cell.use_bias else None,
        activation=activation,
        recurrent_activation=recurrent_activation,
        reset_after=bool(getattr(cell, "reset_after", False)),
        return_sequences=bool(layer.return_sequences),
    )


def _dense(layer: Any, name: str, cls: str) -> LayerSpec | list[str]:
    if getattr(layer, "quantization_mode", None):
        return [f"layer {label(layer)} is quantized ({layer.quantization_mode}): unsupported"]
    activation, reasons = _activation_name(layer, layer.get_config()["activation"])
    if activation is None:
        return reasons
    bias = to_float32(layer.bias) if layer.use_bias else None
    return DenseSpec(name, cls, to_float32(layer.kernel), bias, activation)


def _time_distributed(layer: Any, name: str) -> LayerSpec | list[str]:
    inner = layer.layer
    if not is_builtin(inner):
        return [f"layer {label(layer)} wraps {label(inner)}, which is not a built-in layer"]
    # TimeDistributed feeds its layer one step at a time, as a (batch, features) tensor.
    found = per_step(inner, name, 2)
    if isinstance(found, list):
        return [f"layer {label(layer)} wraps a layer that cannot be streamed: {r}" for r in found]
    return dataclasses.replace(found, class_name=f"TimeDistributed({class_name(inner)})")


def _is_last_axis(axis: Any, ndim: int) -> bool:
    axes = list(axis) if isinstance(axis, list | tuple) else [axis]
    return len(axes) == 1 and int(axes[0]) in (-1, ndim - 1)


def _batch_norm(layer: Any, name: str, ndim: int) -> LayerSpec | list[str]:
    if not _is_last_axis(layer.axis, ndim):
        return [
            f"layer {label(layer)} normalises axis {layer.axis}: only the feature (last) axis "
            "can be applied one step at a time"
        ]
    mean = to_float32(layer.moving_mean)
    variance = to_float32(layer.moving_variance)
    # The same folding as tf.nn.batch_normalization: x * inv + (beta - mean * inv).
    inv = (np.float32(1.0) / np.sqrt(variance + np.float32(layer.epsilon))).astype(np.float32)
    if layer.scale:
        inv = inv * to_float32(layer.gamma)
    offset = -mean * inv
    if layer.center:
        offset = offset + to_float32(layer.beta)
    return AffineSpec(name, "BatchNormalization", inv.astype(np.float32), offset.astype(np.float32))


def _layer_norm(layer: Any, name: str, ndim: int) -> LayerSpec | list[str]:
    if not _is_last_axis(layer.axis, ndim):
        return [
            f"layer {label(layer)} normalises over axes {layer.axis}: only the last axis alone "
            "can be applied one step at a time"
        ]
    rms_scaling = bool(getattr(layer, "rms_scaling", False))
    gamma = to_float32(layer.gamma) if layer.scale else None
    # Keras ignores beta when rms_scaling is set.
    beta = to_float32(layer.beta) if layer.center and not rms_scaling else None
    return LayerNormSpec(name, "LayerNormalization", gamma, beta, float(layer.epsilon), rms_scaling)
