"""The environment of a child process: this process's own, with TensorFlow's defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping

# Keras on TensorFlow, and TensorFlow's C++ log quiet below errors: what a child runs with unless
# the environment says otherwise (or a caller pins them by passing them in `extra`).
TF_DEFAULTS = {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with TF_DEFAULTS where it sets neither, then `extra` on top."""
    env = dict(os.environ)
    for name, value in TF_DEFAULTS.items():
        env.setdefault(name, value)
    env.update(extra or {})
    return env
