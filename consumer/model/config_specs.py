"""A checked layer config and its stored variables to the same step-plan record `layer_specs`
extracts from a Keras layer (same fields, same float32 arithmetic for the folded layers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from consumer.model.config_chain import ConfigLayer
from consumer.model.config_layers import cell_of, inner_of
from consumer.model.errors import ModelError
from consumer.model.layer_specs import CELL_CLASSES, IDENTITY_CLASSES, RECURRENT_CLASSES
from consumer.model.specs import (
    ActivationSpec,
    AffineSpec,
    DenseSpec,
    EluSpec,
    IdentitySpec,
    LayerNormSpec,
    LayerSpec,
    RecurrentSpec,
    ReluSpec,
)
from consumer.model.step import Float32Array


def roles(layer: ConfigLayer) -> tuple[str, ...]:
    """The names of the layer's variables in the order Keras creates (and stores) them."""
    cls = layer.class_name
    config = layer.config
    if cls in RECURRENT_CLASSES or cls == "RNN":
        cell = cell_of(layer).config
        return ("kernel", "recurrent_kernel") + (("bias",) if cell.get("use_bias", True) else ())
    if cls == "Dense":
        return ("kernel",) + (("bias",) if config.get("use_bias", True) else ())
    if cls == "TimeDistributed":
        return roles(inner_of(layer))
    if cls == "BatchNormalization":
        scale, center = config.get("scale", True), config.get("center", True)
        return (
            (("gamma",) if scale else ())
            + (("beta",) if center else ())
            + ("moving_mean", "moving_variance")
        )
    if cls == "LayerNormalization":
        rms = config.get("rms_scaling", False)
        return (("gamma",) if config.get("scale", True) or rms else ()) + (
            ("beta",) if config.get("center", True) and not rms else ()
        )
    return ()


def bind(
    layer: ConfigLayer, arrays: Sequence[Float32Array], names: Sequence[str] | None, source: str
) -> dict[str, Float32Array]:
    """The layer's variables by role; ModelError when the file does not hold what its config
    says it should (a damaged file, or a layout this reader does not know)."""
    wanted = roles(layer)
    stored = None if names is None else [n.rsplit("/", 1)[-1].split(":", 1)[0] for n in names]
    if len(arrays) != len(wanted) or (stored is not None and stored != list(wanted)):
        found = stored if stored is not None else f"{len(arrays)} arrays"
        raise ModelError(
            f"{source}: layer {layer.name!r} (class {layer.class_name}) should hold "
            f"{', '.join(wanted) or 'no variables'} but the file holds {found}"
        )
    return dict(zip(wanted, arrays, strict=True))


def build_spec(layer: ConfigLayer, weights: dict[str, Float32Array]) -> LayerSpec:
    """The plan record of a layer that passed `config_layers.check_link`."""
    cls = layer.class_name
    if cls in RECURRENT_CLASSES or cls == "RNN":
        return _recurrent(layer, weights)
    return _per_step(layer, layer.name, weights)


def _recurrent(layer: ConfigLayer, weights: dict[str, Float32Array]) -> RecurrentSpec:
    cell = cell_of(layer)
    cls = layer.class_name
    kind = CELL_CLASSES[cell.class_name] if cls == "RNN" else RECURRENT_CLASSES[cls]
    kernel = weights["kernel"]
    return RecurrentSpec(
        name=layer.name,
        class_name=cls if cls != "RNN" else f"RNN({cell.class_name})",
        kind=kind,
        units=int(cell.config["units"]),
        n_inputs=int(kernel.shape[0]),
        kernel=kernel,
        recurrent_kernel=weights["recurrent_kernel"],
        bias=weights.get("bias"),
        activation=str(cell.config["activation"]),
        recurrent_activation=None
        if kind == "simple_rnn"
        else str(cell.config["recurrent_activation"]),
        reset_after=bool(cell.config.get("reset_after", False)) if kind == "gru" else False,
        return_sequences=bool(layer.config.get("return_sequences", False)),
    )


def _per_step(layer: ConfigLayer, name: str, weights: dict[str, Float32Array]) -> LayerSpec:
    cls = layer.class_name
    config = layer.config
    if cls in IDENTITY_CLASSES:
        return IdentitySpec(name, cls)
    if cls == "Dense":
        activation = str(config.get("activation", "linear"))
        return DenseSpec(name, cls, weights["kernel"], weights.get("bias"), activation)
    if cls == "TimeDistributed":
        inner = inner_of(layer)
        found = _per_step(inner, name, weights)
        return dataclasses.replace(found, class_name=f"TimeDistributed({inner.class_name})")
    if cls == "Activation":
        return ActivationSpec(name, cls, str(config["activation"]))
    if cls == "LeakyReLU":
        slope = config.get("negative_slope", config.get("alpha", 0.3))
        return ReluSpec(name, cls, float(slope), None, 0.0)
    if cls == "ReLU":
        max_value = config.get("max_value")
        return ReluSpec(
            name,
            cls,
            float(config.get("negative_slope", 0.0)),
            None if max_value is None else float(max_value),
            float(config.get("threshold", 0.0)),
        )
    if cls == "ELU":
        return EluSpec(name, cls, float(config.get("alpha", 1.0)))
    if cls == "Softmax":
        return ActivationSpec(name, cls, "softmax")
    if cls == "BatchNormalization":
        return _batch_norm(name, config.get("epsilon", 1e-3), weights)
    if cls == "LayerNormalization":
        rms_scaling = bool(config.get("rms_scaling", False))
        gamma = weights.get("gamma") if config.get("scale", True) else None
        return LayerNormSpec(
            name, cls, gamma, weights.get("beta"), float(config.get("epsilon", 1e-3)), rms_scaling
        )
    raise AssertionError(f"unchecked layer class {cls}")


def _batch_norm(name: str, epsilon: float, weights: dict[str, Float32Array]) -> AffineSpec:
    # The same folding, in the same float32 order, as layer_specs._batch_norm.
    mean = weights["moving_mean"]
    variance = weights["moving_variance"]
    inv = (np.float32(1.0) / np.sqrt(variance + np.float32(epsilon))).astype(np.float32)
    if "gamma" in weights:
        inv = inv * weights["gamma"]
    offset = -mean * inv
    if "beta" in weights:
        offset = offset + weights["beta"]
    return AffineSpec(name, "BatchNormalization", inv.astype(np.float32), offset.astype(np.float32))
