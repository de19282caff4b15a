"""Whether the optional C extension `consumer.engine._batch_loops` (`batch_loops.c`) is built.

The install builds it where a C compiler and Python's headers are; without them the install still
succeeds and the numpy code, which stays the reference, serves alone. The engine's tests run both.
"""

from __future__ import annotations

from consumer import native_choice

try:
    from consumer.engine import _batch_loops  # noqa: F401  (imported for its presence)
except ImportError:
    BUILT = False
else:
    BUILT = True


def choose(native: bool | None) -> bool:
    """Whether to use the extension (see `consumer.native_choice.choose`)."""
    return native_choice.choose(native, built=BUILT, module="consumer.engine._batch_loops")
