"""A stored model config (Keras 3 or Keras 2) as a linear chain of layer configs, with shapes.

The config-only counterpart of `chain.py`: Sequential models, functional models that are a simple
chain (both Keras 3 and Keras 2 `inbound_nodes` formats) and nested single-input, single-output
models expanded in place. Each link also names where its variables are stored:

- in a `.keras` file, Keras addresses a layer by its class name in snake case and a counter among
  the layers of its model with that class (`layers/lstm`, `layers/lstm_1`, ...), never by the
  layer's name; a recurrent layer's cell is `<layer>/cell` and a wrapped layer `<layer>/layer`;
- in a legacy `.h5` file, by the top-level layer's name, wrappers' variables included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Shape = tuple[int | None, ...]

MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
RECURRENT_LAYERS = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN"})


@dataclass(frozen=True)
class ConfigLayer:
    class_name: str
    name: str
    config: dict[str, Any]
    # The stored keys whose variables, concatenated in order, are this layer's, in Keras' order.
    weight_keys: tuple[str, ...]


@dataclass(frozen=True)
class ConfigLink:
    layer: ConfigLayer
    input_shape: Shape | None
    output_shape: Shape | None


@dataclass(frozen=True)
class ConfigChain:
    input_shape: Shape | None
    output_shape: Shape | None
    links: tuple[ConfigLink, ...]
    reasons: tuple[str, ...]
    # Every layer with variables, in the order of Keras' `model.weights` (for the version).
    all_layers: tuple[ConfigLayer, ...]


def to_snake_case(name: str) -> str:
    """Keras' `naming.to_snake_case`, which names the groups of a `.keras` weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def label(node: dict[str, Any]) -> str:
    return f"{layer_name(node)!r} (class {node.get('class_name')})"


def layer_name(node: dict[str, Any]) -> str:
    config = node.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return str(config["name"])
    return str(node.get("name", "?"))


def extract_config_chain(model: dict[str, Any], keras_file: bool) -> ConfigChain:
    """The chain of `model` (`{"class_name", "config"}`); `keras_file` picks the weight keys."""
    walker = _Walker(keras_file)
    input_shape = walker.input_shape(model)
    if input_shape is None:
        return ConfigChain(
            None,
            None,
            (),
            (
                "the model has no defined input: build it with keras.Input(shape=(time, "
                "features)) (or pass input_shape) before saving",
            ),
            (),
        )
    links = walker.model_links(model, "", input_shape)
    output = links[-1].output_shape if links else input_shape
    return ConfigChain(
        input_shape, output, tuple(links), tuple(walker.reasons), walker.weight_order(model, "")
    )


class _Walker:
    def __init__(self, keras_file: bool) -> None:
        self.keras_file = keras_file
        self.reasons: list[str] = []

    def weight_order(self, model: dict[str, Any], prefix: str) -> tuple[ConfigLayer, ...]:
        """Every layer in config order, nested models expanded where they stand: the order of
        Keras' `model.weights`."""
        nodes = [n for n in model["config"].get("layers", []) if isinstance(n, dict)]
        keys = self._keys(model.get("class_name"), nodes, prefix)
        found: list[ConfigLayer] = []
        for node in nodes:
            if id(node) not in keys:
                continue
            layer, inner_prefix = keys[id(node)]
            if node.get("class_name") in MODEL_CLASSES and isinstance(node.get("config"), dict):
                found.extend(self.weight_order(node, inner_prefix))
            else:
                found.append(layer)
        return tuple(found)

    def input_shape(self, model: dict[str, Any]) -> Shape | None:
        config = model["config"]
        nodes = [n for n in config.get("layers", []) if isinstance(n, dict)]
        for node in nodes:
            if node.get("class_name") == "InputLayer":
                inner = node.get("config", {})
                shape = inner.get("batch_shape", inner.get("batch_input_shape"))
                return _shape(shape)
        if isinstance(config.get("build_input_shape"), list):
            return _shape(config["build_input_shape"])
        if nodes and isinstance(nodes[0].get("config", {}).get("batch_input_shape"), list):
            return _shape(nodes[0]["config"]["batch_input_shape"])
        return None

    def model_links(self, model: dict[str, Any], prefix: str, shape: Shape) -> list[ConfigLink]:
        nodes = [n for n in model["config"].get("layers", []) if isinstance(n, dict)]
        keys = self._keys(model.get("class_name"), nodes, prefix)
        if model.get("class_name") == "Sequential":
            ordered = [n for n in nodes if n.get("class_name") != "InputLayer"]
        else:
            found = self._functional_order(model["config"], nodes)
            if found is None:
                return []
            ordered = found
        links: list[ConfigLink] = []
        current: Shape | None = shape
        for node in ordered:
            layer, inner_prefix = keys[id(node)]
            if node.get("class_name") in MODEL_CLASSES:
                if not self.keras_file:
                    self.reasons.append(
                        f"layer {label(node)} is a nested model, which this reader takes from "
                        ".keras files only: re-save the model with model.save('model.keras')"
                    )
                    return links
                if current is None:
                    return links
                inner = self.model_links(node, inner_prefix, current)
                links.extend(inner)
                current = inner[-1].output_shape if inner else current
                continue
            out = output_shape(layer, current)
            links.append(ConfigLink(layer, current, out))
            current = out
        return links

    def _keys(
        self, cls: Any, nodes: list[dict[str, Any]], prefix: str
    ) -> dict[int, tuple[ConfigLayer, str]]:
        # Keras' `Sequential.layers` leaves out the leading InputLayer; counters run per class.
        counted = nodes
        if cls == "Sequential" and nodes and nodes[0].get("class_name") == "InputLayer":
            counted = nodes[1:]
        used: dict[str, int] = {}
        found: dict[int, tuple[ConfigLayer, str]] = {}
        for node in counted:
            cls_name = str(node.get("class_name"))
            base = to_snake_case(cls_name)
            used[base] = used.get(base, -1) + 1
            path = f"{prefix}layers/{base}" + (f"_{used[base]}" if used[base] else "")
            config = node.get("config") if isinstance(node.get("config"), dict) else {}
            assert isinstance(config, dict)
            if self.keras_file:
                weight_keys: tuple[str, ...] = (path,)
                if cls_name in RECURRENT_LAYERS:
                    weight_keys += (f"{path}/cell",)
                elif cls_name == "TimeDistributed":
                    weight_keys += (f"{path}/layer",)
            else:
                weight_keys = (layer_name(node),)
            found[id(node)] = (
                ConfigLayer(cls_name, layer_name(node), config, weight_keys),
                f"{path}/",
            )
        return found

    def _functional_order(
        self, config: dict[str, Any], nodes: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        by_name = {layer_name(n): n for n in nodes}
        inputs = _refs(config.get("input_layers"))
        outputs = _refs(config.get("output_layers"))
        if len(inputs) != 1:
            self.reasons.append(
                f"the model has {len(inputs)} inputs: only one input of shape "
                "(batch, time, features) is supported"
            )
        if len(outputs) != 1:
            self.reasons.append(
                f"the model has {len(outputs)} outputs: only one output is supported"
            )
        if len(inputs) != 1 or len(outputs) != 1:
            return None
        ordered: list[dict[str, Any]] = []
        name, index = outputs[0][0], outputs[0][1]
        while True:
            node = by_name.get(name)
            if node is None:
                self.reasons.append(f"the config names a layer {name!r} it does not define")
                return None
            if node.get("class_name") == "InputLayer":
                break
            inbound = node.get("inbound_nodes") or []
            sources = _node_inputs(inbound[index]) if index < len(inbound) else []
            if len(sources) != 1:
                self.reasons.append(
                    f"layer {label(node)} takes {len(sources)} tensors: only a linear chain of "
                    "layers (one input, one output, no branches) is supported"
                )
                return None
            ordered.append(node)
            name, index = sources[0]
        ordered.reverse()
        return ordered


def _refs(value: Any) -> list[tuple[str, int]]:
    """`input_layers` / `output_layers`: one `[name, node, tensor]` or a list of them."""
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], str):
        return [(value[0], int(value[1]))]
    return [(str(v[0]), int(v[1])) for v in value if isinstance(v, list) and v]


def _node_inputs(node: Any) -> list[tuple[str, int]]:
    """The tensors a call node reads: Keras 3 `{"args", "kwargs"}` with `__keras_tensor__`
    entries, or Keras 2 `[[name, node, tensor, kwargs], ...]`."""
    if isinstance(node, list):
        return [(str(v[0]), int(v[1])) for v in node if isinstance(v, list) and v]
    found: list[tuple[str, int]] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                history = value.get("config", {}).get("keras_history", [])
                found.append((str(history[0]), int(history[1])))
                return
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(node)
    return found


def _shape(value: Any) -> Shape | None:
    if not isinstance(value, list):
        return None
    return tuple(None if d is None else int(d) for d in value)


def output_shape(layer: ConfigLayer, shape: Shape | None) -> Shape | None:
    """The layer's output shape for input `shape`, for the layers the plan supports; None
    for anything else (it is refused with its own reason)."""
    if shape is None or not shape:
        return None
    config = layer.config
    cls = layer.class_name
    if cls in RECURRENT_LAYERS:
        cell = config.get("cell", {}).get("config", {}) if cls == "RNN" else config
        units = cell.get("units")
        if not isinstance(units, int) or len(shape) != 3:
            return None
        return (shape[0], shape[1], units) if config.get("return_sequences") else (shape[0], units)
    if cls == "Dense":
        units = config.get("units")
        return (*shape[:-1], units) if isinstance(units, int) else None
    if cls == "TimeDistributed":
        inner = config.get("layer", {})
        if not isinstance(inner, dict) or len(shape) < 3:
            return None
        inner_layer = ConfigLayer(str(inner.get("class_name")), "", inner.get("config", {}), ())
        step = output_shape(inner_layer, (shape[0], *shape[2:]))
        return None if step is None else (step[0], shape[1], *step[1:])
    return shape
