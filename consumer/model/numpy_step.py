"""`NumpyStep`: the plan run as one batched, explicit-state float32 numpy step.

The hot path of the service. No per-row Python: each layer is a handful of whole-batch numpy
calls writing into buffers that are sized for the largest batch seen and reused. A row's result
depends on that row alone, bit for bit, whatever the batch (see `consumer.model.row_blocks`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from consumer.model.cells import RecurrentCell, make_cell
from consumer.model.ops import PerStepOp, make_op
from consumer.model.specs import IdentitySpec, PlanBacked, RecurrentSpec, StepPlan
from consumer.model.step import Float32Array

_MIN_CAPACITY = 64
# Rows per block for large batches; 512 to 1024 measured best for the reference model.
CHUNK_ROWS = 1024


class NumpyStep(PlanBacked):
    """Implements `consumer.model.step.StepFunction` from a `StepPlan` alone. `native`: whether
    LSTM layers use the compiled cell loop, equal bit for bit (None: where it is built)."""

    def __init__(self, plan: StepPlan, native: bool | None = None) -> None:
        self.plan = plan
        self._stages: list[RecurrentCell | PerStepOp] = []
        width = plan.n_features
        for layer in plan.layers:
            if isinstance(layer, IdentitySpec):
                continue
            if isinstance(layer, RecurrentSpec):
                self._stages.append(make_cell(layer, native))
                width = layer.units
            else:
                op = make_op(layer, width)
                self._stages.append(op)
                width = op.width
        self._capacity = 0
        self._out = np.empty((0, plan.n_outputs), np.float32)

    @property
    def matmul_kinds(self) -> dict[str, int]:
        """How many of the step's matrix products run as BLAS row blocks, and how many in the
        slower ordered fallback (where this machine's BLAS does not keep rows independent)."""
        kinds = Counter(m.kind for stage in self._stages for m in stage.matmuls)
        return dict(sorted(kinds.items()))

    def _ensure(self, rows: int) -> None:
        if rows <= self._capacity:
            return
        # Grow to a power of two so a slowly rising batch size reallocates only a few times.
        capacity = max(_MIN_CAPACITY, 1 << (rows - 1).bit_length())
        for stage in self._stages:
            stage.ensure(min(capacity, CHUNK_ROWS))
        self._out = np.empty((capacity, self.plan.n_outputs), np.float32)
        self._capacity = capacity

    def step(self, x: Float32Array, states: list[Float32Array]) -> Float32Array:
        if x.ndim != 2 or x.shape[1] != self.plan.n_features:
            raise ValueError(f"x must be (batch, {self.plan.n_features}), got {x.shape}")
        if len(states) != len(self.plan.state_sizes):
            raise ValueError(f"expected {len(self.plan.state_sizes)} states, got {len(states)}")
        rows = x.shape[0]
        self._ensure(rows)
        if rows <= CHUNK_ROWS:
            result, owned = self._run(x, states)
            if owned:
                return result
            # The result would alias the caller's input or a state: hand out our own copy.
            np.copyto(self._out[:rows], result)
            return self._out[:rows]
        # Large batches go through in cache-sized blocks of rows: measured faster than whole.
        for start in range(0, rows, CHUNK_ROWS):
            stop = min(rows, start + CHUNK_ROWS)
            result, _ = self._run(x[start:stop], [state[start:stop] for state in states])
            np.copyto(self._out[start:stop], result)
        return self._out[:rows]

    def _run(self, x: Float32Array, states: list[Float32Array]) -> tuple[Float32Array, bool]:
        current, owned = x, False
        first_state = 0
        for stage in self._stages:
            if isinstance(stage, RecurrentCell):
                current = stage.run(current, states[first_state : first_state + stage.n_states])
                first_state += stage.n_states
                owned = False
            else:
                current = stage.apply(current, owned)
                owned = True
        return current, owned
