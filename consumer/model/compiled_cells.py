"""Whether the optional C extension `consumer.model._cell_loops` (`cell_loops.c`) is built: the
element-wise middle of an LSTM step in one call, equal to the numpy code bit for bit.

Built by the same install as `consumer.engine._batch_loops`, and optional the same way: without
it the numpy code, which stays the reference, serves alone. The model's tests run both.
"""

from __future__ import annotations

from consumer import native_choice

try:
    from consumer.model import _cell_loops  # noqa: F401  (imported for its presence)
except ImportError:
    BUILT = False
else:
    BUILT = True


def choose(native: bool | None) -> bool:
    """Whether to use the extension (see `consumer.native_choice.choose`)."""
    return native_choice.choose(native, built=BUILT, module="consumer.model._cell_loops")
