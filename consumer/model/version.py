"""The model version: a short hash of the model's config and weights."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def model_version(model: Any) -> str:
    """First 8 hex chars of sha256 over the canonical JSON config and every weight's raw bytes,
    in model order; any change to architecture or any weight gives another version."""
    digest = hashlib.sha256()
    config = json.dumps(model.get_config(), sort_keys=True, separators=(",", ":"), default=str)
    digest.update(config.encode("utf-8"))
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:8]
