"""The interface every model backend offers the engine: one batched step of many sequences."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

BackendName = Literal["numpy", "keras-batched", "keras-stateful"]
BACKENDS: tuple[BackendName, ...] = ("numpy", "keras-batched", "keras-stateful")


class StepFunction(Protocol):
    """Advances a batch of independent sequences by exactly one sample each.

    State tensors are listed in plan order: for every recurrent layer, bottom to top,
    its `h` (and then `c` for an LSTM). A zero state is the state before a sequence's first sample.
    """

    @property
    def n_features(self) -> int: ...

    @property
    def n_outputs(self) -> int: ...

    @property
    def state_sizes(self) -> tuple[int, ...]: ...

    @property
    def version(self) -> str:
        """Short hash of the model's config and weights; stamped on outputs and state records."""
        ...

    def step(self, x: Float32Array, states: list[Float32Array]) -> Float32Array:
        """One step for a batch.

        x: (B, n_features) float32. states: one (B, state_sizes[i]) float32 C-contiguous array per
        state tensor; they are updated in place to the state after this sample. Returns
        (B, n_outputs) float32: the model's output for the prefix ending with this sample. The
        returned array may be an internal buffer, valid only until the next call.
        """
        ...
