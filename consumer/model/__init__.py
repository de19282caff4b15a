"""The model side: safe loading, the streamability check and plan, and the step backends.

Importing this package does not import TensorFlow or Keras; loading a model does.
"""

# ruff: noqa: PLC0415  (Keras and TensorFlow are imported lazily: importing them costs seconds)

from __future__ import annotations

from pathlib import Path

from consumer.model.describe import describe_plan
from consumer.model.errors import ModelError, ModelRefused
from consumer.model.kernels import NumpyStep
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
]


def load_plan(path: str | Path) -> StepPlan:
    """Loads the model file safely and extracts its step plan (ModelError / ModelRefused)."""
    from consumer.model.loader import load_keras_model
    from consumer.model.plan import build_plan

    return build_plan(load_keras_model(path), str(path))


def load_step_function(path: str | Path, backend: BackendName = "numpy") -> StepFunction:
    """The step function for the model in `path` on the chosen backend."""
    from consumer.model.loader import load_keras_model
    from consumer.model.plan import build_plan

    model = load_keras_model(path)
    plan = build_plan(model, str(path))
    if backend == "numpy":
        return NumpyStep(plan)
    from consumer.model.keras_backends import KerasBatchedStep, KerasStatefulStep

    if backend == "keras-batched":
        return KerasBatchedStep(model, plan)
    if backend == "keras-stateful":
        return KerasStatefulStep(model, plan)
    raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
