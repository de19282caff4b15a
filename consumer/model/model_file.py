"""A Keras model file opened with `zipfile`, `json` and `h5py` only: its config, then its weights.

- `.keras` (Keras 3): a zip of `config.json`, `metadata.json` and `model.weights.h5`, where a
  layer's variables sit at `layers/<class in snake case>[_<n>]/vars/<i>` (see `config_chain`).
- legacy `.h5` / `.hdf5` (Keras 3 or Keras 2): the config in the `model_config` attribute and each
  top-level layer's variables under `model_weights/<layer name>`, listed in `weight_names`.

Nothing is read from the weights until `StoredModel.weights` is called, which the plan reader does
only after the config has passed the allowlist.
"""

# ruff: noqa: PLC0415  (h5py is imported when a file is opened, not when the package is)

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from consumer.model.errors import ModelError
from consumer.model.step import Float32Array

SUFFIXES = (".keras", ".h5", ".hdf5")
_WEIGHTS_H5 = "model.weights.h5"
_RESAVE = (
    "re-save it with `keras.saving.load_model(path).save('model.keras')` (Keras' default: one "
    "model.weights.h5 inside the .keras file)"
)

Format = Literal["keras", "h5"]


@dataclass(frozen=True)
class StoredWeights:
    """The raw arrays of one layer (its own variables, in Keras' order) and their stored names
    (None where the format does not store names: `.keras`)."""

    arrays: tuple[Float32Array, ...]
    names: tuple[str, ...] | None


@dataclass(frozen=True)
class StoredModel:
    path: Path
    format: Format
    # {"class_name": ..., "config": {...}} as stored, parsed as JSON only.
    config: dict[str, Any]
    keras_major: int

    def weights(self, keys: Sequence[str]) -> dict[str, StoredWeights]:
        """Layers' variables, by key: a layer's `.keras` path (`layers/lstm/cell`) or, in `.h5`,
        its top-level layer name. A key with no stored variables maps to no arrays."""
        import h5py

        try:
            if self.format == "keras":
                with zipfile.ZipFile(self.path) as archive:
                    data = archive.read(_WEIGHTS_H5)
                with h5py.File(io.BytesIO(data), mode="r") as h5:
                    return {key: _keras_vars(h5.get(f"{key}/vars")) for key in keys}
            with h5py.File(self.path, mode="r") as h5:
                root = h5.get("model_weights", h5)
                return {key: _h5_vars(root.get(key)) for key in keys}
        except (OSError, KeyError, ValueError) as error:
            raise ModelError(f"cannot read the weights in {self.path}: {error}") from error


def _keras_vars(group: Any) -> StoredWeights:
    if group is None:
        return StoredWeights((), None)
    return StoredWeights(tuple(_array(group[str(i)]) for i in range(len(group.keys()))), None)


def _h5_vars(group: Any) -> StoredWeights:
    if group is None:
        return StoredWeights((), ())
    names = tuple(_text(n) for n in group.attrs.get("weight_names", ()))
    return StoredWeights(tuple(_array(group[n]) for n in names), names)


def _array(dataset: Any) -> Float32Array:
    return np.ascontiguousarray(np.asarray(dataset[()]), dtype=np.float32)


def _text(raw: Any) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def open_model_file(path: str | Path) -> StoredModel:
    """The file's config and format; ModelError when it is not a model file this reader takes."""
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"model file not found: {file}")
    if file.suffix.lower() not in SUFFIXES:
        raise ModelError(f"{file}: expected a Keras model file ({', '.join(SUFFIXES)})")
    try:
        if file.suffix.lower() == ".keras":
            return _open_keras(file)
        return _open_h5(file)
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ModelError(f"cannot read model file {file}: {error}") from error


def _open_keras(file: Path) -> StoredModel:
    with zipfile.ZipFile(file) as archive:
        members = set(archive.namelist())
        config = json.loads(archive.read("config.json").decode("utf-8"))
        metadata = (
            json.loads(archive.read("metadata.json").decode("utf-8"))
            if "metadata.json" in members
            else {}
        )
    if _WEIGHTS_H5 not in members:
        if "model.weights.npz" in members:
            raise ModelError(
                f"{file} stores its weights as .npz, which is not read here: {_RESAVE}"
            )
        sharded = sorted(m for m in members if m.startswith("model.weights"))
        if sharded:
            raise ModelError(f"{file} stores its weights sharded ({', '.join(sharded)}): {_RESAVE}")
        raise ModelError(f"{file} holds no {_WEIGHTS_H5}: {_RESAVE}")
    return StoredModel(file, "keras", _model_dict(config, file), _major(metadata, 3))


def _open_h5(file: Path) -> StoredModel:
    import h5py

    with h5py.File(file, mode="r") as h5:
        raw = h5.attrs.get("model_config")
        version = h5.attrs.get("keras_version")
    if raw is None:
        raise ModelError(f"{file} holds no model config (weights only?)")
    config = json.loads(_text(raw))
    major = _major({"keras_version": _text(version)} if version is not None else {}, 2)
    return StoredModel(file, "h5", _model_dict(config, file), major)


def _model_dict(config: Any, file: Path) -> dict[str, Any]:
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ModelError(f"{file}: the stored config is not a Keras model config")
    return config


def _major(metadata: dict[str, Any], default: int) -> int:
    version = metadata.get("keras_version")
    if isinstance(version, str) and version.split(".", 1)[0].isdigit():
        return int(version.split(".", 1)[0])
    return default
