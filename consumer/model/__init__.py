"""The model side: safe loading, the streamability check and plan, and the step backends.

Importing this package does not import TensorFlow, Keras or h5py. The numpy backend's plan is
read from the file with `zipfile`, `json` and `h5py` (`file_plan`); Keras is imported only for
the `keras-batched` and `keras-stateful` reference backends, which need the model object.
"""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

from pathlib import Path

from consumer.model.describe import describe_plan
from consumer.model.errors import ModelError, ModelRefused
from consumer.model.numpy_step import NumpyStep
from consumer.model.specs import StepPlan
from consumer.model.step import BACKENDS, BackendName, StepFunction

__all__ = [
    "BACKENDS",
    "BackendName",
    "ModelError",
    "ModelRefused",
    "NumpyStep",
    "StepFunction",
    "StepPlan",
    "describe_plan",
    "load_plan",
    "load_step_function",
    "require_keras",
]

KERAS_EXTRA = "lstm-stream-scorer[keras]"


def require_keras(what: str) -> None:
    """ModelError naming the extra to install when TensorFlow or Keras is missing."""
    import importlib.util

    missing = [m for m in ("keras", "tensorflow") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"{what} needs {' and '.join(missing)}, which this install does not have: install "
            f"the keras extra (pip install '{KERAS_EXTRA}', or `pip install -e '.[keras]'` "
            "from a checkout)"
        )


def load_plan(path: str | Path) -> StepPlan:
    """Reads the model file safely and extracts its step plan (ModelError / ModelRefused),
    without TensorFlow or Keras."""
    from consumer.model.file_plan import read_plan

    return read_plan(path)


def load_step_function(path: str | Path, backend: BackendName = "numpy") -> StepFunction:
    """The step function for the model in `path` on the chosen backend. The plan (and so the
    version) comes from the file on every backend; the Keras backends load Keras as well."""
    plan = load_plan(path)
    if backend == "numpy":
        return NumpyStep(plan)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    require_keras(f"the {backend} backend")
    from consumer.model.keras_backends import KerasBatchedStep, KerasStatefulStep
    from consumer.model.loader import load_keras_model

    model = load_keras_model(path)
    if backend == "keras-batched":
        return KerasBatchedStep(model, plan)
    if backend == "keras-stateful":
        return KerasStatefulStep(model, plan)
    raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
