"""Row-block products: each row's result depends on that row alone, and the ordered fallback is
taken, and still exact, where a BLAS would not keep rows independent."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.model import row_blocks
from consumer.model.numpy_step import NumpyStep
from consumer.model.plan import build_plan
from consumer.model.row_blocks import (
    ROW_BLOCK,
    BlockedMatmul,
    OrderedMatmul,
    make_matmul,
    padded_rows,
    rows_are_independent,
)
from tests.unit.model.conftest import zoo_model

SHAPES = [(16, (16, 1)), (36, (4, 36, 32)), (49, (4, 49, 16)), (600, (600, 5)), (3, (3, 2))]


def _product(matmul: row_blocks.Matmul, x: np.ndarray) -> np.ndarray:
    w = matmul.weights
    rows = padded_rows(len(x))
    padded = np.zeros((rows, x.shape[1]), np.float32)
    padded[: len(x)] = x
    out = np.empty((*w.shape[:-2], rows, w.shape[-1]), np.float32)
    matmul(padded, out)
    return out[..., : len(x), :]


@pytest.mark.parametrize(("k", "shape"), SHAPES)
@pytest.mark.parametrize("kind", [BlockedMatmul, OrderedMatmul])
def test_every_row_is_the_same_alone_and_in_any_batch(
    k: int, shape: tuple[int, ...], kind: type[BlockedMatmul] | type[OrderedMatmul]
) -> None:
    rng = np.random.default_rng(k)
    matmul = kind(rng.normal(0.0, 1.0, shape).astype(np.float32))
    x = rng.normal(0.0, 2.0, (5 * ROW_BLOCK + 7, k)).astype(np.float32)
    whole = _product(matmul, x)
    for size in (1, 2, ROW_BLOCK - 1, ROW_BLOCK + 1, 100):
        picked = rng.permutation(len(x))[:size]
        np.testing.assert_array_equal(_product(matmul, x[picked]), whole[..., picked, :])
    np.testing.assert_allclose(whole, x @ matmul.weights, rtol=1e-5, atol=1e-4)


def test_the_probe_catches_a_product_that_depends_on_the_batch() -> None:
    class BatchDependent(BlockedMatmul):
        def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
            super().__call__(x, out)
            out[..., :1, :] += np.float32(1e-6)  # the first row of a call is summed differently

    w = np.ones((4, 3), np.float32)
    assert not rows_are_independent(BatchDependent(w), 4)
    assert rows_are_independent(BlockedMatmul(w), 4)


def test_a_blas_that_fails_the_probe_gets_the_ordered_fallback_and_stays_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = build_plan(zoo_model("gru_reset_before_then_lstm"), "gru")
    fast = NumpyStep(plan)
    assert fast.matmul_kinds == {"blas-blocks": 4}  # GRU, its candidate, LSTM, Dense
    monkeypatch.setattr(row_blocks, "rows_are_independent", lambda *_: False)
    assert isinstance(make_matmul(np.ones((2, 2), np.float32)), OrderedMatmul)
    slow = NumpyStep(plan)
    assert slow.matmul_kinds == {"ordered": 4}
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, (70, plan.n_features)).astype(np.float32)
    states = [rng.normal(0.0, 0.5, (70, s)).astype(np.float32) for s in plan.state_sizes]
    a = fast.step(x, [s.copy() for s in states]).copy()
    b = slow.step(x, [s.copy() for s in states]).copy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    one = slow.step(x[5:6], [np.ascontiguousarray(s[5:6]) for s in states])
    np.testing.assert_array_equal(one, b[5:6])
