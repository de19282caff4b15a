"""The benchmark's models and its window baseline (Keras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.baselines import PaddedWindowScorer
from bench.models import WINDOW, save_streaming_model, window_model
from consumer.codecs.inputs import InputRecord
from consumer.model import load_step_function


def _record(key: str, row: list[float], offset: int, end: bool = False) -> InputRecord:
    return InputRecord(key, [row], end, False, None, 0, offset)


def test_padded_window_scores_the_zero_padded_latest_window() -> None:
    model = window_model(seed=1)
    scorer = PaddedWindowScorer(model, 3)
    rng = np.random.default_rng(0)
    rows = rng.normal(0, 1, (WINDOW + 3, 3)).astype(np.float32)
    other = rng.normal(0, 1, 3).astype(np.float32)
    records = [_record("a", r.tolist(), i) for i, r in enumerate(rows[:2])]
    records.append(_record("b", other.tolist(), 2))  # interleaved: keys keep their own windows
    records += [_record("a", r.tolist(), 3 + i) for i, r in enumerate(rows[2:])]
    got = scorer.score(records)

    def expected(window: np.ndarray) -> float:
        return float(np.asarray(model(window[None], training=False)).reshape(-1)[0])

    want = []
    for t in range(1, len(rows) + 1):
        window = np.zeros((WINDOW, 3), np.float32)
        recent = rows[max(0, t - WINDOW) : t]
        window[WINDOW - len(recent) :] = recent  # missing steps are zeros, in front
        want.append(expected(window))
    b_window = np.zeros((WINDOW, 3), np.float32)
    b_window[-1] = other
    want.insert(2, expected(b_window))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_end_marker_forgets_the_window() -> None:
    scorer = PaddedWindowScorer(window_model(seed=2), 3)
    scorer.score([_record("a", [1.0, 2.0, 3.0], 0, end=True)])
    assert not scorer.window("a").any()


def test_the_streaming_model_is_the_users_without_flatten(tmp_path: Path) -> None:
    step = load_step_function(save_streaming_model(tmp_path / "m.keras", seed=3))
    assert step.n_features == 3 and step.n_outputs == 1
    assert step.state_sizes == (32, 32, 16, 16)  # h and c of LSTM(32) and LSTM(16)
