"""Loading a Keras model file without ever running code stored in it.

The model's config is read as plain JSON first (from `config.json` in a `.keras` zip, or the
`model_config` attribute of a legacy `.h5` file) and scanned: `Lambda` layers, serialized Python
lambdas, objects from modules other than Keras, and layer classes Keras does not ship are refused
before Keras sees the file. Only then is it loaded with `safe_mode=True` as a second line of
defence.
"""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumer.model.errors import ModelError, ModelRefused

SUFFIXES = (".keras", ".h5", ".hdf5")
_LAYER_KEYS = ("layer", "cell", "forward_layer", "backward_layer")
_LAYER_LIST_KEYS = ("layers", "cells")
_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
_CODE_CLASSES = frozenset({"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"})


def load_keras_model(path: str | Path) -> Any:
    """The model in `path`, uncompiled; ModelError (or ModelRefused) when it cannot be used."""
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"model file not found: {file}")
    if file.suffix.lower() not in SUFFIXES:
        raise ModelError(f"{file}: expected a Keras model file ({', '.join(SUFFIXES)})")
    reasons = unsafe_reasons(read_config(file), file.name)
    if reasons:
        raise ModelRefused(tuple(reasons), str(file))
    import keras

    try:
        return keras.saving.load_model(file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types; all mean the same to the caller.
        raise ModelError(f"cannot load model {file}: {error}") from error


def read_config(file: Path) -> Any:
    """The model's config as stored, parsed as JSON only."""
    try:
        if file.suffix.lower() == ".keras":
            with zipfile.ZipFile(file) as archive:
                text = archive.read("config.json").decode("utf-8")
        else:
            import h5py

            with h5py.File(file, mode="r") as h5:
                raw = h5.attrs.get("model_config")
            if raw is None:
                raise ModelError(f"{file} holds no model config (weights only?)")
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        return json.loads(text)
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ModelError(f"cannot read model file {file}: {error}") from error


def unsafe_reasons(
    config: Any, file_name: str, is_builtin_layer: Callable[[str], bool] | None = None
) -> list[str]:
    """Every object in the config that would run code or needs code Keras does not ship.
    `is_builtin_layer` judges a layer class by name; by default Keras' own list (imports Keras)."""
    builtin = is_builtin_layer if is_builtin_layer is not None else _keras_has_layer
    reasons: list[str] = []

    def layer_name(node: dict[str, Any], fallback: str) -> str:
        inner = node.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return str(inner["name"])
        return str(node.get("name", fallback))

    def visit(node: Any, owner: str, is_layer: bool) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, owner, False)
            return
        if not isinstance(node, dict):
            return
        cls = node.get("class_name")
        if isinstance(cls, str):
            name = layer_name(node, owner) if is_layer else owner
            problem = _problem(node, cls, is_layer, builtin)
            if problem:
                where = f"layer {name!r} (class {cls})" if is_layer else f"in layer {owner!r}"
                reasons.append(f"{where} of {file_name}: {problem}; it was not loaded")
                return
            owner = name
        for key, value in node.items():
            if key == "compile_config":
                continue  # loaded with compile=False: losses and metrics are never built
            if key in _LAYER_KEYS:
                visit(value, owner, True)
            elif key in _LAYER_LIST_KEYS and isinstance(value, list):
                for item in value:
                    visit(item, owner, True)
            else:
                visit(value, owner, False)

    visit(config, "<model>", True)
    return reasons


def _keras_has_layer(cls: str) -> bool:
    import keras

    builtin = getattr(keras.layers, cls, None)
    return isinstance(builtin, type) and issubclass(builtin, keras.layers.Layer)


def _problem(
    node: dict[str, Any], cls: str, is_layer: bool, builtin: Callable[[str], bool]
) -> str | None:
    if cls in _CODE_CLASSES:
        what = "a Python lambda" if cls == "__lambda__" else f"a {cls} layer"
        return f"{what} runs arbitrary Python code and is refused"
    module = node.get("module")
    if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
        return f"custom object {cls!r} from module {module!r}: custom code is never loaded"
    registered = node.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        return f"custom object {registered!r}: custom code is never loaded"
    if is_layer and cls not in _MODEL_CLASSES and not builtin(cls):
        return f"unknown layer class {cls!r}: only built-in Keras layers are loaded"
    return None
