"""Matrix products whose every row comes out the same, bit for bit, in whatever batch it is in.

BLAS picks its kernel, and so the order in which it sums, by the shape of a product: with
OpenBLAS 0.3.31 (SkylakeX kernels) a row of `x @ w` differs in its last bits between a batch of 1
and a batch of 300 whenever `w` has one column, and for most shapes once the inner dimension
reaches 32. A score must not depend on which other sequences shared its micro-batch, so every
product of the step runs as a stack of blocks of exactly `ROW_BLOCK` rows: BLAS then sees a
single shape, and each row's result depends on that row alone.

That is a property of a BLAS build, not a promise, so `make_matmul` checks it at load time on each
weight matrix of the model (rows moved to other positions and other blocks must give the same
bits). Where the check fails, the product falls back to `OrderedMatmul`: the same sum in a fixed
order with element-wise numpy, exact but several times slower; the step reports which it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal, Protocol

import numpy as np

from consumer.model.step import Float32Array

ROW_BLOCK = 32  # rows per BLAS call; measured as fast as one large call from 64 rows up
MatmulKind = Literal["blas-blocks", "ordered"]
_PROBE_SHIFTS = (1, 5, ROW_BLOCK - 1, ROW_BLOCK + 3)


def padded_rows(rows: int) -> int:
    """Rows rounded up to whole blocks: buffers handed to a matmul here have this many."""
    return -(-rows // ROW_BLOCK) * ROW_BLOCK


class Matmul(Protocol):
    kind: MatmulKind
    weights: Float32Array  # (K, N), or (G, K, N) stacked

    def __call__(self, x: Float32Array, out: Float32Array) -> None:
        """out = x @ weights. x: (P, K) with P a multiple of ROW_BLOCK; out: (P, N), or (G, P, N)
        for stacked weights (G, K, N)."""
        ...

    def bind(self, x: Float32Array, out: Float32Array) -> Callable[[], None]:
        """This product on these very buffers, ready to call again and again."""
        ...


def _blocks(a: Float32Array, axis: int) -> Float32Array:
    """A view of `a` with its row axis split into (blocks, ROW_BLOCK); never a copy, since the
    product must land in the caller's buffer."""
    view = a.view()
    shape = list(a.shape)
    shape[axis : axis + 1] = [shape[axis] // ROW_BLOCK, ROW_BLOCK]
    view.shape = tuple(shape)  # raises instead of copying when a view is impossible
    return view


class BlockedMatmul:
    kind: MatmulKind = "blas-blocks"

    def __init__(self, weights: Float32Array) -> None:
        self.weights = np.ascontiguousarray(weights, np.float32)
        # Stacked weights (G, K, N) broadcast against (blocks, ROW_BLOCK, K) as (G, 1, K, N).
        self._w = self.weights if self.weights.ndim == 2 else self.weights[:, None]

    def __call__(self, x: Float32Array, out: Float32Array) -> None:
        np.matmul(_blocks(x, 0), self._w, out=_blocks(out, out.ndim - 2))

    def bind(self, x: Float32Array, out: Float32Array) -> Callable[[], None]:
        return partial(np.matmul, _blocks(x, 0), self._w, out=_blocks(out, out.ndim - 2))


class OrderedMatmul:
    """sum_k x[:, k] * w[k] for k = 0, 1, ..., each product and sum rounded to float32 in turn:
    the same operations for every row, whatever the batch."""

    kind: MatmulKind = "ordered"

    def __init__(self, weights: Float32Array) -> None:
        self.weights = np.ascontiguousarray(weights, np.float32)
        self._scratch = np.empty(0, np.float32)

    def bind(self, x: Float32Array, out: Float32Array) -> Callable[[], None]:
        return partial(self, x, out)

    def __call__(self, x: Float32Array, out: Float32Array) -> None:
        stacked = self.weights if self.weights.ndim == 3 else self.weights[None]
        targets = out if out.ndim == 3 else out[None]
        rows, n = x.shape[0], stacked.shape[2]
        if self._scratch.size < rows * n:
            self._scratch = np.empty(rows * n, np.float32)
        term = self._scratch[: rows * n].reshape(rows, n)
        for w, target in zip(stacked, targets, strict=True):
            np.multiply(x[:, 0:1], w[0], out=target)
            for k in range(1, w.shape[0]):
                np.multiply(x[:, k : k + 1], w[k], out=term)
                np.add(target, term, out=target)


class BufferProducts:
    """`matmul(x[:rows], out[..., :rows, :])` for whole-block row counts, each bound once: making
    the block views took about as long as a product of one block."""

    def __init__(self, matmul: Matmul, x: Float32Array, out: Float32Array) -> None:
        self._matmul, self._x, self._out = matmul, x, out
        self._bound: dict[int, Callable[[], None]] = {}

    def __call__(self, rows: int) -> None:
        bound = self._bound.get(rows)
        if bound is None:
            bound = self._matmul.bind(self._x[:rows], self._out[..., :rows, :])
            self._bound[rows] = bound
        bound()


def rows_are_independent(matmul: Matmul, n_inputs: int, seed: int = 0) -> bool:
    """Whether moving rows to other positions and other blocks leaves their results unchanged."""
    w = matmul.weights
    rng = np.random.default_rng(seed)
    rows = 3 * ROW_BLOCK
    x = rng.normal(0.0, 2.0, (rows, n_inputs)).astype(np.float32)
    out_shape = (rows, w.shape[-1]) if w.ndim == 2 else (w.shape[0], rows, w.shape[-1])
    reference = np.empty(out_shape, np.float32)
    matmul(x, reference)
    moved = np.empty_like(reference)
    for shift in _PROBE_SHIFTS:
        matmul(np.roll(x, shift, axis=0), moved)
        if not np.array_equal(np.roll(moved, -shift, axis=-2), reference):
            return False
    return True


def make_matmul(weights: Float32Array) -> Matmul:
    """The fast blocked product where this machine's BLAS keeps rows independent, else the
    ordered one."""
    blocked = BlockedMatmul(weights)
    if rows_are_independent(blocked, int(weights.shape[-2])):
        return blocked
    return OrderedMatmul(weights)
