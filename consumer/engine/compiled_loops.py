"""Whether the optional C extension `consumer.engine._batch_loops` (`batch_loops.c`) is built.

The install builds it where a C compiler and Python's headers are; without them the install still
succeeds and the numpy code, which stays the reference, serves alone. The engine's tests run both.
"""

from __future__ import annotations

try:
    from consumer.engine import _batch_loops  # noqa: F401  (imported for its presence)
except ImportError:
    BUILT = False
else:
    BUILT = True


def choose(native: bool | None) -> bool:
    """Whether to use the extension: when built, unless `native` says otherwise; asking for it
    where it is not built is an error rather than a silent fallback."""
    if native and not BUILT:
        raise RuntimeError(
            "the C extension consumer.engine._batch_loops is not built: install the package "
            "again where a C compiler is (make install)"
        )
    return BUILT if native is None else native
