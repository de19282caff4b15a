"""`check-model`: the plan (exit 0), refusal reasons one per line (exit 2), load errors (exit 1)."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import pytest
from keras import layers

from consumer.commands import check_model


def test_prints_the_plan(saved_models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert check_model.main([str(saved_models["user"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model: {saved_models['user']}")
    assert "state per sequence: 4 tensors" in out
    # Keras numbers layer names per process ("dense", "dense_3"): match the rest of the line.
    assert re.search(r"7\. dense(_\d+)? \(Dense\): 1 units, activation sigmoid", out)


def test_prints_every_reason_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "flat.keras"
    keras.Sequential(
        [
            keras.Input((7, 3)),
            layers.Conv1D(2, 2, name="conv"),
            layers.LSTM(4, return_sequences=True),
            layers.Flatten(name="flat"),
            layers.Dense(1),
        ]
    ).save(path)
    assert check_model.main([str(path)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("refused:")
    assert len(lines) == 3
    assert "'conv' (class Conv1D)" in lines[1] and "'flat' (class Flatten)" in lines[2]


def test_load_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_model.main([str(tmp_path / "missing.keras")]) == 1
    assert "not found" in capsys.readouterr().err
