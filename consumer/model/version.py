"""The model version: a short hash of the model's config and weights."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np


def model_version(model: Any) -> str:
    """The version of a Keras model object: its `get_config()` and `model.weights`, in order."""
    return config_version(model.get_config(), (weight.numpy() for weight in model.weights))


def config_version(config: Any, weights: Iterable[Any]) -> str:
    """First 8 hex chars of sha256 over the canonical JSON config and every weight's raw bytes,
    in model order; any change to architecture or any weight gives another version."""
    digest = hashlib.sha256()
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    digest.update(text.encode("utf-8"))
    for weight in weights:
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:8]
