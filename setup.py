"""The optional C extension `consumer.engine._batch_loops` (`consumer/engine/batch_loops.c`);
everything else about the package is in pyproject.toml.

Built where a C compiler and Python's headers are; elsewhere the install goes on without it and
the engine runs its numpy code alone. `LSTM_SCORER_REQUIRE_EXTENSION=1` makes a failed build fail
the install instead (the container images set it).
"""

import os

from setuptools import Extension, setup

REQUIRED = os.environ.get("LSTM_SCORER_REQUIRE_EXTENSION") == "1"

setup(
    ext_modules=[
        Extension(
            "consumer.engine._batch_loops",
            ["consumer/engine/batch_loops.c"],
            optional=not REQUIRED,
        ),
        Extension(
            "consumer.model._cell_loops",
            ["consumer/model/cell_loops.c"],
            # Bit-equal to numpy only if no product and sum are fused into one rounding.
            extra_compile_args=["-ffp-contract=off"],
            optional=not REQUIRED,
        ),
    ]
)
