"""The streamability check: a loaded Keras model to a `StepPlan`, or every reason it is refused.

A model streams when it is a linear chain from one `(batch, time or None, features)` input to one
output, made of recurrent layers (LSTM, GRU, SimpleRNN) and layers that act on each time step on
its own. Its output for the prefix 1..t is then computable from the state after t-1 samples and
sample t alone. A model without recurrent layers is accepted when it is purely per-step (its
output at t depends on sample t only); the plan marks it stateless.
"""

from __future__ import annotations

from typing import Any

from consumer.model.chain import extract_chain
from consumer.model.errors import ModelRefused
from consumer.model.layer_specs import layer_spec
from consumer.model.specs import LayerSpec, RecurrentSpec, StepPlan
from consumer.model.version import model_version


def build_plan(model: Any, source: str) -> StepPlan:
    """Extracts the plan once; raises ModelRefused listing all reasons found."""
    chain = extract_chain(model)
    reasons = list(chain.reasons)
    n_features, trained_length = input_dims(chain.input_shape, reasons)
    layers: list[LayerSpec] = []
    for link in chain.links:
        found = layer_spec(link)
        if isinstance(found, list):
            reasons.extend(found)
        else:
            layers.append(found)
    reasons.extend(_order_reasons(layers))
    n_outputs = output_units(chain.output_shape, reasons)
    if reasons:
        raise ModelRefused(tuple(reasons), source)
    assert n_features is not None and n_outputs is not None
    return StepPlan(
        source=source,
        n_features=n_features,
        n_outputs=n_outputs,
        trained_length=trained_length,
        layers=tuple(layers),
        version=model_version(model),
    )


def input_dims(
    shape: tuple[int | None, ...] | None, reasons: list[str]
) -> tuple[int | None, int | None]:
    """Features and trained length from the model's input shape; a refusal reason if unusable."""
    if shape is None:
        return None, None
    if len(shape) != 3 or shape[2] is None:
        reasons.append(
            f"the model's input has shape {shape}: a sequence model needs "
            "(batch, time or None, features) with a fixed feature count"
        )
        return None, None
    return shape[2], shape[1]


def output_units(shape: tuple[int | None, ...] | None, reasons: list[str]) -> int | None:
    """Output units from the model's output shape; a refusal reason if unusable."""
    if shape is None:
        return None
    if len(shape) not in (2, 3) or shape[-1] is None:
        reasons.append(
            f"the model's output has shape {shape}: expected (batch, units) or (batch, time, units)"
        )
        return None
    return shape[-1]


def _order_reasons(layers: list[LayerSpec]) -> list[str]:
    """A recurrent layer that returns only its last output must be the last recurrent layer."""
    recurrent = [layer for layer in layers if isinstance(layer, RecurrentSpec)]
    return [
        f"layer {layer.name!r} (class {layer.class_name}) returns only its last output "
        "(return_sequences=False) but another recurrent layer follows it"
        for layer in recurrent[:-1]
        if not layer.return_sequences
    ]
