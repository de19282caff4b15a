"""Whether the optional C extension `consumer.model._cell_loops` (`cell_loops.c`) is built: the
element-wise middle of an LSTM step in one call, equal to the numpy code bit for bit.

Built by the same install as `consumer.engine._batch_loops`, and optional the same way: without
it the numpy code, which stays the reference, serves alone. The model's tests run both.
"""

from __future__ import annotations

from consumer.native_choice import OptionalExtension

_EXTENSION = OptionalExtension("consumer.model._cell_loops")
BUILT = _EXTENSION.built
choose = _EXTENSION.choose  # whether to use it (`OptionalExtension.choose`)
