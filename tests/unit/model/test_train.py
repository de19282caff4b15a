"""The synthetic generator, ROC AUC, and a tiny run of the train command."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from consumer.commands import train as train_command
from consumer.model import load_plan
from consumer.training import synthetic
from consumer.training.scoring_metrics import accuracy, roc_auc


def test_generator_is_deterministic_per_seed() -> None:
    x1, y1 = synthetic.generate(np.random.default_rng(42), 50, 7)
    x2, y2 = synthetic.generate(np.random.default_rng(42), 50, 7)
    x3, _ = synthetic.generate(np.random.default_rng(43), 50, 7)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (50, 7, synthetic.N_FEATURES) and x1.dtype == np.float32
    assert set(np.unique(y1)) <= {0, 1}


@pytest.mark.parametrize("length", [1, 3, 7, 20])
def test_generator_supports_any_length(length: int) -> None:
    x, _ = synthetic.generate(np.random.default_rng(0), 10, length)
    assert x.shape == (10, length, 3) and np.isfinite(x).all()
    one = synthetic.sequence(np.random.default_rng(1), 1, length)
    assert one.shape == (length, 3) and one.dtype == np.float32


def test_evidence_accumulates_over_steps() -> None:
    """A simple statistic (mean of feature 0 minus feature 2 so far) separates the classes
    better with every sample: the signal is partial early and grows."""
    x, y = synthetic.generate(np.random.default_rng(5), 4000, 7)
    difference = x[:, :, 0] - x[:, :, 2]
    aucs = [roc_auc(y, difference[:, :t].mean(axis=1)) for t in range(1, 8)]
    assert 0.6 < aucs[0] < 0.8
    assert all(later > earlier for earlier, later in itertools.pairwise(aucs))
    assert aucs[-1] > 0.9


def test_roc_auc_against_a_hand_computed_case() -> None:
    # Pairs (positive, negative): (0.8 vs 0.1) win, (0.8 vs 0.4) win, (0.4 vs 0.1) win,
    # (0.4 vs 0.4) tie = 1/2, (0.35 vs 0.1) win, (0.35 vs 0.4) loss: 4.5 / 6.
    y = [1, 0, 1, 0, 1]
    p = [0.8, 0.1, 0.4, 0.4, 0.35]
    assert roc_auc(y, p) == pytest.approx(4.5 / 6)
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert roc_auc([0, 1], [0.9, 0.2]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert accuracy([1, 0, 1], [0.7, 0.2, 0.4]) == pytest.approx(2 / 3)


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([1, 1], [0.2, 0.4])


def test_tiny_training_run_writes_a_loadable_model_and_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def tiny(name: str) -> Path:
        output = tmp_path / name
        args = ["--output", str(output), "--epochs", "1", "--samples", "64", "--seed", "3"]
        assert train_command.main(args) == 0
        return output

    plan = load_plan(tiny("tiny.keras"))
    printed = capsys.readouterr().out
    assert "ROC AUC" in printed
    rows = [line.split() for line in printed.splitlines() if line.startswith("  ")]
    assert [int(row[0]) for row in rows if row[0].isdigit()] == list(range(1, 8))
    assert (plan.n_features, plan.n_outputs, plan.state_sizes) == (3, 1, (32, 32, 16, 16))
    assert load_plan(tiny("again.keras")).version == plan.version, "same seed: same model"


def test_train_refuses_an_output_that_is_not_keras(tmp_path: Path) -> None:
    assert train_command.main(["--output", str(tmp_path / "model.h5")]) == 1
