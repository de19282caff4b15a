"""Whether the optional C extension `consumer.engine._batch_loops` (`batch_loops.c`) is built.

The install builds it where a C compiler and Python's headers are; without them the install still
succeeds and the numpy code, which stays the reference, serves alone. The engine's tests run both.
"""

from __future__ import annotations

from consumer.native_choice import OptionalExtension

_EXTENSION = OptionalExtension("consumer.engine._batch_loops")
BUILT = _EXTENSION.built
choose = _EXTENSION.choose  # whether to use it (`OptionalExtension.choose`)
