"""The allowlist of layers and options a stored config may use, checked before any weight is read.

Each supported class lists every option Keras 3 or Keras 2 writes for it. An option outside the
list, a class outside the list, or an option with a value the numpy step does not compute (a
quantized Dense, batch renormalization, `go_backwards`, ...) is a reason to refuse the model,
named. The refusal texts are the ones `layer_specs` gives for the same problems on a Keras model.
"""

from __future__ import annotations

from typing import Any

from consumer.model import activations
from consumer.model.config_chain import ConfigLayer, ConfigLink
from consumer.model.layer_specs import (
    CELL_CLASSES,
    IDENTITY_CLASSES,
    RECURRENT_CLASSES,
    SUPPORTED_TEXT,
    TIME_MIXING,
)

_COMMON = frozenset({"name", "trainable", "dtype"})
_INIT = ("initializer", "regularizer", "constraint")
_CELL = frozenset(
    {"units", "activation", "use_bias", "dropout", "recurrent_dropout", "seed", "implementation"}
    | {f"{w}_{k}" for w in ("kernel", "recurrent", "bias") for k in _INIT}
)
_RNN = frozenset(
    {"return_sequences", "return_state", "go_backwards", "stateful", "unroll"}
    | {"zero_output_for_mask", "time_major", "activity_regularizer", "use_cudnn"}
)
_NORM = frozenset(
    {"axis", "epsilon", "center", "scale"} | {f"{w}_{k}" for w in ("beta", "gamma") for k in _INIT}
)
OPTIONS: dict[str, frozenset[str]] = {
    "LSTMCell": _CELL | {"recurrent_activation", "unit_forget_bias"},
    "GRUCell": _CELL | {"recurrent_activation", "reset_after"},
    "SimpleRNNCell": _CELL,
    "RNN": _RNN | {"cell"},
    "Dense": frozenset(
        {"units", "activation", "use_bias", "activity_regularizer", "quantization_config"}
        | {"lora_rank", "lora_alpha"}
        | {f"{w}_{k}" for w in ("kernel", "bias") for k in _INIT}
    ),
    "TimeDistributed": frozenset({"layer"}),
    "LeakyReLU": frozenset({"negative_slope", "alpha"}),
    "ReLU": frozenset({"max_value", "negative_slope", "threshold"}),
    "ELU": frozenset({"alpha"}),
    "Softmax": frozenset({"axis"}),
    "Activation": frozenset({"activation"}),
    "BatchNormalization": _NORM
    | {"momentum", "moving_mean_initializer", "moving_variance_initializer", "synchronized"}
    | {"renorm", "renorm_clipping", "renorm_momentum", "fused", "virtual_batch_size", "adjustment"},
    "LayerNormalization": _NORM | {"rms_scaling"},
    "Dropout": frozenset({"rate", "noise_shape", "seed"}),
    "SpatialDropout1D": frozenset({"rate", "noise_shape", "seed"}),
    "GaussianNoise": frozenset({"stddev", "seed"}),
    "GaussianDropout": frozenset({"rate", "seed"}),
    "AlphaDropout": frozenset({"rate", "noise_shape", "seed"}),
    "ActivityRegularization": frozenset({"l1", "l2"}),
}
for _layer, _cell in (("LSTM", "LSTMCell"), ("GRU", "GRUCell"), ("SimpleRNN", "SimpleRNNCell")):
    OPTIONS[_layer] = OPTIONS[_cell] | _RNN
# Options whose value changes what the layer computes at inference beyond what the plan reads:
# only these values are accepted.
_MUST_BE: dict[str, dict[str, Any]] = {
    "Dense": {"quantization_config": None, "lora_rank": None},
    "BatchNormalization": {"renorm": False, "virtual_batch_size": None, "adjustment": None},
}


def label(layer: ConfigLayer) -> str:
    return f"{layer.name!r} (class {layer.class_name})"


def check_link(link: ConfigLink) -> list[str]:
    """Every reason this link cannot be streamed, judged on its config alone."""
    layer = link.layer
    cls = layer.class_name
    if cls in TIME_MIXING:
        return [f"layer {label(layer)} {TIME_MIXING[cls]}"]
    reasons = _options(layer)
    if reasons:
        return reasons
    reasons = _dtype(layer)
    if cls in RECURRENT_CLASSES or cls == "RNN":
        return reasons + _recurrent(layer)
    ndim = len(link.input_shape) if link.input_shape is not None else 3
    return reasons + per_step(layer, ndim)


def _options(layer: ConfigLayer) -> list[str]:
    allowed = OPTIONS.get(layer.class_name)
    if allowed is None:
        return []  # unsupported classes are reported by per_step with the supported list
    reasons = [
        f"layer {label(layer)} has option {key!r}, which this reader does not know, so it "
        "cannot tell what the layer computes: it was not loaded; retrain without it"
        for key in sorted(set(layer.config) - allowed - _COMMON)
    ]
    for key, wanted in _MUST_BE.get(layer.class_name, {}).items():
        if layer.config.get(key, wanted) != wanted:
            reasons.append(
                f"layer {label(layer)} sets {key}={layer.config[key]!r}, which is not "
                f"supported: only {key}={wanted!r}"
            )
    return reasons


def _dtype(layer: ConfigLayer) -> list[str]:
    dtype = layer.config.get("dtype", "float32")
    name: Any = dtype
    if isinstance(dtype, dict):
        if dtype.get("class_name") not in ("DTypePolicy", "Policy", "FloatDTypePolicy"):
            name = dtype.get("class_name")
        else:
            name = dtype.get("config", {}).get("name")
    compute = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(str(name), name)
    if compute not in ("float32", None):
        return [f"layer {label(layer)} computes in {compute}: only float32 models are supported"]
    return []


def activation_reasons(layer: ConfigLayer, configured: Any) -> list[str]:
    if isinstance(configured, str) and configured in activations.SUPPORTED:
        return []
    shown = configured.get("config", configured) if isinstance(configured, dict) else configured
    return [
        f"layer {label(layer)} uses activation {shown!r}, which cannot be evaluated here: "
        f"supported are {', '.join(sorted(activations.SUPPORTED))}"
    ]


def cell_of(layer: ConfigLayer) -> ConfigLayer:
    """The cell a recurrent layer runs: its own config for LSTM/GRU/SimpleRNN."""
    if layer.class_name != "RNN":
        return layer
    cell = layer.config.get("cell")
    if not isinstance(cell, dict):
        return ConfigLayer(type(cell).__name__, "?", {}, ())
    config = cell.get("config") if isinstance(cell.get("config"), dict) else {}
    assert isinstance(config, dict)
    return ConfigLayer(str(cell.get("class_name")), str(config.get("name", "?")), config, ())


def _recurrent(layer: ConfigLayer) -> list[str]:
    cell = cell_of(layer)
    if layer.class_name == "RNN":
        if cell.class_name not in CELL_CLASSES:
            what = (
                "stacks several cells" if cell.class_name == "StackedRNNCells" else "wraps a cell"
            )
            return [
                f"layer {label(layer)} {what} (class {cell.class_name}): only RNN over a single "
                "LSTMCell, GRUCell or SimpleRNNCell is supported; use one recurrent layer per cell"
            ]
        problems = _options(cell) + _dtype(cell)
        if problems:
            return problems
    reasons: list[str] = []
    if layer.config.get("go_backwards"):
        reasons.append(
            f"layer {label(layer)} reads the sequence backwards (go_backwards=True), so its "
            "output depends on samples that have not arrived yet; retrain with go_backwards=False"
        )
    if layer.config.get("return_state"):
        reasons.append(
            f"layer {label(layer)} returns its states (return_state=True): the model must have "
            "a single output"
        )
    if layer.config.get("time_major"):
        reasons.append(f"layer {label(layer)} reads time-major input (time_major=True): retrain")
    reasons.extend(activation_reasons(layer, cell.config.get("activation")))
    if cell.class_name != "SimpleRNNCell" and layer.class_name != "SimpleRNN":
        reasons.extend(activation_reasons(layer, cell.config.get("recurrent_activation")))
    return reasons


def per_step(layer: ConfigLayer, ndim: int) -> list[str]:
    cls = layer.class_name
    config = layer.config
    if cls in IDENTITY_CLASSES or cls in ("LeakyReLU", "ReLU", "ELU"):
        return []
    if cls in ("Dense", "Activation"):
        return activation_reasons(layer, config.get("activation", "linear"))
    if cls == "TimeDistributed":
        return _time_distributed(layer)
    if cls in ("Softmax", "BatchNormalization", "LayerNormalization"):
        axis = config.get("axis", -1)
        if is_last_axis(axis, ndim):
            return []
        if cls == "Softmax":
            return [f"layer {label(layer)} takes softmax over axis {axis}: only the last"]
        if cls == "BatchNormalization":
            return [
                f"layer {label(layer)} normalises axis {axis}: only the feature (last) axis "
                "can be applied one step at a time"
            ]
        return [
            f"layer {label(layer)} normalises over axes {axis}: only the last axis alone "
            "can be applied one step at a time"
        ]
    if cls in RECURRENT_CLASSES or cls == "RNN":
        return [f"layer {label(layer)} is recurrent: it cannot be wrapped in TimeDistributed"]
    return [f"unsupported layer {label(layer)}: only {SUPPORTED_TEXT} are supported"]


def _time_distributed(layer: ConfigLayer) -> list[str]:
    inner = inner_of(layer)
    problems = _options(inner) + _dtype(inner)
    if not problems:
        # TimeDistributed feeds its layer one step at a time, as a (batch, features) tensor.
        problems = per_step(inner, 2)
    return [f"layer {label(layer)} wraps a layer that cannot be streamed: {r}" for r in problems]


def inner_of(layer: ConfigLayer) -> ConfigLayer:
    node = layer.config.get("layer")
    node = node if isinstance(node, dict) else {}
    config = node.get("config") if isinstance(node.get("config"), dict) else {}
    assert isinstance(config, dict)
    return ConfigLayer(str(node.get("class_name")), str(config.get("name", "?")), config, ())


def is_last_axis(axis: Any, ndim: int) -> bool:
    axes = list(axis) if isinstance(axis, list | tuple) else [axis]
    return len(axes) == 1 and isinstance(axes[0], int) and axes[0] in (-1, ndim - 1)


def keras2_reasons(link: ConfigLink) -> list[str]:
    """Keras 2 files: `hard_sigmoid` there is `clip(0.2 x + 0.5)`, not Keras 3's `relu6(x + 3) / 6`
    the numpy step computes (Keras 3 loading such a file silently changes it too)."""
    layer = link.layer
    configs = [layer.config, cell_of(layer).config, inner_of(layer).config]
    if any(
        config.get(key) == "hard_sigmoid"
        for config in configs
        for key in ("activation", "recurrent_activation")
    ):
        return [
            f"layer {label(layer)} uses Keras 2's hard_sigmoid (0.2 * x + 0.5, clipped), which "
            "Keras 3 and this service compute differently (relu6(x + 3) / 6): retrain with "
            "sigmoid, or with Keras 3"
        ]
    return []


_INPUT_OPTIONS = frozenset({"batch_shape", "batch_input_shape", "sparse", "ragged", "optional"})


def input_reasons(node: Any) -> list[str]:
    """Every InputLayer in the config (nested models' too): only a dense float32 input."""
    reasons: list[str] = []
    if isinstance(node, list):
        for item in node:
            reasons.extend(input_reasons(item))
    elif isinstance(node, dict):
        if node.get("class_name") == "InputLayer" and isinstance(node.get("config"), dict):
            config = node["config"]
            layer = ConfigLayer("InputLayer", str(config.get("name", "?")), config, ())
            reasons.extend(
                f"layer {label(layer)} has option {key!r}, which this reader does not know: "
                "it was not loaded"
                for key in sorted(set(config) - _INPUT_OPTIONS - _COMMON)
            )
            reasons.extend(
                f"layer {label(layer)} takes a {key} input: only a dense float32 input is supported"
                for key in ("sparse", "ragged", "optional")
                if config.get(key)
            )
            reasons.extend(_dtype(layer))
        else:
            for value in node.values():
                reasons.extend(input_reasons(value))
    return reasons
