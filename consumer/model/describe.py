"""A step plan in words, for `check-model` and the logs."""

from __future__ import annotations

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
    StepPlan,
)


def describe_plan(plan: StepPlan) -> str:
    length = (
        f"built for windows of {plan.trained_length}"
        if plan.trained_length is not None
        else "built for any length"
    )
    lines = [
        f"model: {plan.source}",
        f"version: {plan.version}",
        f"features per sample: {plan.n_features} ({length}; streams sequences of any length)",
        f"outputs per sample: {plan.n_outputs}",
        f"state per sequence: {_state(plan)}",
        "layers, in order:",
    ]
    for number, layer in enumerate(plan.layers, start=1):
        lines.append(f"  {number}. {layer.name} ({layer.class_name}): {_layer(layer)}")
    return "\n".join(lines)


def _state(plan: StepPlan) -> str:
    if plan.stateless:
        return "none (no recurrent layer: the model is purely per-step)"
    parts = []
    for layer in plan.recurrent:
        names = ("h", "c") if layer.kind == "lstm" else ("h",)
        parts.append(f"{layer.name} " + " ".join(f"{n}[{layer.units}]" for n in names))
    total = sum(plan.state_sizes)
    count = len(plan.state_sizes)
    return f"{count} tensors, {total} float32 values ({', '.join(parts)})"


def _layer(layer: LayerSpec) -> str:
    if isinstance(layer, RecurrentSpec):
        parts = [f"{layer.kind}, {layer.units} units", f"activation {layer.activation}"]
        if layer.recurrent_activation is not None:
            parts.append(f"recurrent_activation {layer.recurrent_activation}")
        if layer.kind == "gru":
            parts.append(f"reset_after {layer.reset_after}")
        parts.append("bias" if layer.use_bias else "no bias")
        parts.append(
            "returns sequences (per-step output)"
            if layer.return_sequences
            else "returns its last output"
        )
        return ", ".join(parts)
    if isinstance(layer, DenseSpec):
        bias = "bias" if layer.bias is not None else "no bias"
        return f"{layer.units} units, activation {layer.activation}, {bias}"
    if isinstance(layer, ActivationSpec):
        return f"activation {layer.activation}"
    if isinstance(layer, ReluSpec):
        return (
            f"negative_slope {layer.negative_slope:g}, max_value {layer.max_value}, "
            f"threshold {layer.threshold:g}"
        )
    if isinstance(layer, EluSpec):
        return f"alpha {layer.alpha:g}"
    if isinstance(layer, AffineSpec):
        return f"folded to scale and offset over {layer.scale.shape[0]} features"
    if isinstance(layer, LayerNormSpec):
        mode = "rms_scaling (no centring)" if layer.rms_scaling else "mean and variance"
        flags = f"scale {layer.gamma is not None}, center {layer.beta is not None}"
        return f"over the last axis, {mode}, epsilon {layer.epsilon:g}, {flags}"
    assert isinstance(layer, IdentitySpec)
    return "identity at inference (not computed)"
