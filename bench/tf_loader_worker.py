"""`python -m bench.tf_loader_worker run ...`: the service with the model loaded as it was before
the file reader (Keras loads the file; the plan is extracted from the Keras model), for
`bench.startup` to measure side by side with the TensorFlow-free worker."""

# ruff: noqa: PLC0415  (the loader is swapped before the command module imports it)

from __future__ import annotations

import sys
from pathlib import Path

# First: it sets the process's environment (one BLAS thread) before numpy is imported.
from consumer.__main__ import main  # isort: skip
import consumer.model
from consumer.model.step import BackendName, StepFunction


def keras_loaded_step(path: str | Path, backend: BackendName = "numpy") -> StepFunction:
    from consumer.model.loader import load_keras_model
    from consumer.model.numpy_step import NumpyStep
    from consumer.model.plan import build_plan

    assert backend == "numpy", "the comparison is of loaders, on the numpy backend"
    return NumpyStep(build_plan(load_keras_model(path), str(path)))


if __name__ == "__main__":
    consumer.model.load_step_function = keras_loaded_step
    sys.exit(main(sys.argv[1:]))
