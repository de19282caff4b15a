"""A Keras model as a linear chain of layers, from its single input to its single output.

Sequential models and functional models that are a simple chain qualify; nested single-input,
single-output models are expanded in place. Anything else (branches, merges, several inputs or
outputs) is reported as a reason, and the model's layers are still returned so that every
per-layer problem can be reported together with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class ChainLink:
    layer: Any  # a keras.layers.Layer (or a keras operation that is not a layer)
    input_shape: Shape
    output_shape: Shape


@dataclass(frozen=True)
class Chain:
    input_shape: Shape | None
    output_shape: Shape | None
    links: tuple[ChainLink, ...]
    reasons: tuple[str, ...]


def label(layer: Any) -> str:
    """How messages name a layer: its name and class."""
    return f"{getattr(layer, 'name', '?')!r} (class {type(layer).__name__})"


def extract_chain(model: Any) -> Chain:
    try:
        inputs = list(model.inputs)
        outputs = list(model.outputs)
    except (AttributeError, ValueError):
        inputs, outputs = [], []
    if not inputs or not outputs:
        return Chain(
            None,
            None,
            (),
            (
                "the model has no defined input: build it with keras.Input(shape=(time, "
                "features)) (or pass input_shape) before saving",
            ),
        )
    reasons: list[str] = []
    if len(inputs) != 1:
        reasons.append(
            f"the model has {len(inputs)} inputs: only one input of shape "
            "(batch, time, features) is supported"
        )
    if len(outputs) != 1:
        reasons.append(f"the model has {len(outputs)} outputs: only one output is supported")
    input_shape = _shape(inputs[0])
    output_shape = _shape(outputs[0])
    if not reasons:
        links, problem = _walk(outputs[0])
        if problem is None:
            return Chain(input_shape, output_shape, links, ())
        reasons.append(problem)
    return Chain(input_shape, output_shape, _all_layers(model), tuple(reasons))


def _shape(tensor: Any) -> Shape:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _is_input_layer(op: Any) -> bool:
    return type(op).__name__ == "InputLayer"


def _walk(output: Any) -> tuple[tuple[ChainLink, ...], str | None]:
    """Follows the graph back from `output` to an input; keras' node history is the only record
    of how a functional model's layers are wired."""
    links: list[ChainLink] = []
    tensor = output
    while True:
        op, node_index, _ = tensor._keras_history
        if _is_input_layer(op):
            break
        node = op._inbound_nodes[node_index]
        inputs = list(node.input_tensors)
        if len(inputs) != 1:
            return (), (
                f"layer {label(op)} takes {len(inputs)} tensors: only a linear chain of layers "
                "(one input, one output, no branches) is supported"
            )
        if _is_model(op):
            inner, problem = _walk_nested(op)
            if problem is not None:
                return (), problem
            links.extend(reversed(inner))
        else:
            links.append(ChainLink(op, _shape(inputs[0]), _shape(tensor)))
        tensor = inputs[0]
    links.reverse()
    return tuple(links), None


def _walk_nested(model: Any) -> tuple[tuple[ChainLink, ...], str | None]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return (), f"nested model {label(model)} must have exactly one input and one output"
    return _walk(model.outputs[0])


def _is_model(op: Any) -> bool:
    return any(cls.__name__ in ("Functional", "Sequential") for cls in type(op).__mro__)


def _all_layers(model: Any) -> tuple[ChainLink, ...]:
    found: list[ChainLink] = []
    for op in getattr(model, "operations", model.layers):
        if _is_input_layer(op):
            continue
        if _is_model(op):
            found.extend(_all_layers(op))
            continue
        node = op._inbound_nodes[0] if op._inbound_nodes else None
        first_in = node.input_tensors[0] if node is not None and node.input_tensors else None
        first_out = node.output_tensors[0] if node is not None and node.output_tensors else None
        found.append(
            ChainLink(
                op,
                _shape(first_in) if first_in is not None else (),
                _shape(first_out) if first_out is not None else (),
            )
        )
    return tuple(found)
