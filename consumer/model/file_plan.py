"""The step plan straight from a model file, without TensorFlow or Keras.

In order, and stopping at the first stage that finds a problem:
1. the config is read as JSON (`model_file`) and scanned for code: Lambda layers, serialized
   Python lambdas and objects from outside Keras are refused by name (`loader.unsafe_reasons`);
2. the config becomes a chain of layers (`config_chain`), every layer and option is checked
   against the allowlist (`config_layers`), and every reason is reported together;
3. only then are the weights read, matched to what each layer's config says it holds, and turned
   into the plan (`config_specs`).

The version is the one `version.model_version` gives the model Keras loads from the same file:
the stored config is what Keras' `get_config()` returns, less the `shared_object_id` keys a
`.keras` file adds and, in a Keras 3 `.h5` file, plus the `module`, `registered_name` and
`build_config` entries that format leaves out of top-level layers. A Keras 2 `.h5` config is
hashed as stored (Keras 3 rewrites it on loading, which cannot be replayed without Keras).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumer.model.config_chain import (
    RECURRENT_LAYERS,
    ConfigChain,
    ConfigLink,
    extract_config_chain,
)
from consumer.model.config_layers import check_link, input_reasons, keras2_reasons
from consumer.model.config_specs import bind, build_spec
from consumer.model.errors import ModelRefused
from consumer.model.loader import unsafe_reasons
from consumer.model.model_file import StoredModel, StoredWeights, open_model_file
from consumer.model.plan import _order_reasons, input_dims, output_units
from consumer.model.specs import LayerSpec, StepPlan
from consumer.model.version import config_version

# Top-level layers that Keras 3 builds with their input shape, so that `get_config()` carries a
# `build_config` for them (layers without a `build` method of their own are built implicitly).
_BUILT = RECURRENT_LAYERS | {"Dense", "TimeDistributed", "BatchNormalization", "LayerNormalization"}


def read_plan(path: str | Path) -> StepPlan:
    """The plan of the model in `path`; ModelError or ModelRefused (every reason) otherwise."""
    stored = open_model_file(path)
    source = str(path)
    # Known classes pass the scan; unknown built-in ones are refused by the allowlist below,
    # with the list of supported layers, before anything else happens.
    reasons = unsafe_reasons(stored.config, stored.path.name, lambda cls: True)
    if reasons:
        raise ModelRefused(tuple(reasons), str(stored.path))
    chain = extract_config_chain(stored.config, stored.format == "keras")
    reasons = [*chain.reasons, *input_reasons(stored.config)]
    n_features, trained_length = input_dims(chain.input_shape, reasons)
    for link in chain.links:
        reasons.extend(check_link(link))
        if stored.keras_major < 3:
            reasons.extend(keras2_reasons(link))
    n_outputs = output_units(chain.output_shape, reasons)
    if reasons:
        raise ModelRefused(tuple(reasons), source)
    weights = stored.weights(sorted({k for layer in chain.all_layers for k in layer.weight_keys}))
    layers: list[LayerSpec] = []
    for link in chain.links:
        arrays, names = _arrays(link.layer.weight_keys, weights)
        layers.append(build_spec(link.layer, bind(link.layer, arrays, names, source)))
    reasons.extend(_order_reasons(layers))
    if reasons:
        raise ModelRefused(tuple(reasons), source)
    assert n_features is not None and n_outputs is not None
    return StepPlan(
        source=source,
        n_features=n_features,
        n_outputs=n_outputs,
        trained_length=trained_length,
        layers=tuple(layers),
        version=_version(stored, chain, weights),
    )


def _arrays(
    keys: tuple[str, ...], weights: dict[str, StoredWeights]
) -> tuple[list[Any], list[str] | None]:
    arrays: list[Any] = []
    names: list[str] | None = []
    for key in keys:
        found = weights[key]
        arrays.extend(found.arrays)
        names = None if found.names is None or names is None else [*names, *found.names]
    return arrays, names


def _version(stored: StoredModel, chain: ConfigChain, weights: dict[str, StoredWeights]) -> str:
    config = stored.config["config"]
    if stored.format == "keras":
        config = _without_shared_ids(config)
    elif stored.keras_major >= 3:
        config = _with_keras3_entries(config, chain.links)
    arrays = [
        a for layer in chain.all_layers for key in layer.weight_keys for a in weights[key].arrays
    ]
    return config_version(config, arrays)


def _without_shared_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_shared_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_shared_ids(v) for v in value]
    return value


def _with_keras3_entries(config: dict[str, Any], links: tuple[ConfigLink, ...]) -> dict[str, Any]:
    shapes = {link.layer.name: link.input_shape for link in links}
    layers = []
    for stored in config.get("layers", []):
        node = {**stored, "module": "keras.layers", "registered_name": None}
        name = node.get("config", {}).get("name")
        if node.get("class_name") in _BUILT and shapes.get(name) is not None:
            node["build_config"] = {"input_shape": list(shapes[name] or ())}
        layers.append(node)
    return {**config, "layers": layers}
