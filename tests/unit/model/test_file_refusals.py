"""The file reader refuses by name, from the config alone, before it reads any weight: code,
custom objects, unknown layers and unknown or unsupported options; and weights it cannot read."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pytest
from keras import layers

from consumer.model import ModelError, ModelRefused
from consumer.model.file_plan import read_plan
from consumer.model.model_file import StoredModel
from tests.unit.model.test_refusals import Doubling, lambda_model


@pytest.fixture
def no_weight_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: StoredModel, keys: Any) -> Any:
        raise AssertionError(f"weights of {self.path} were read")

    monkeypatch.setattr(StoredModel, "weights", refuse)


def small_model() -> Any:
    return keras.Sequential(
        [keras.Input((None, 3)), layers.LSTM(2, return_sequences=True), layers.Dense(1, name="out")]
    )


def edit_keras_config(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrites config.json inside a .keras file; the other members are kept as they are."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def refusal_reasons(path: Path) -> tuple[str, ...]:
    with pytest.raises(ModelRefused) as caught:
        read_plan(path)
    return caught.value.reasons


@pytest.mark.usefixtures("no_weight_reads")
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_is_refused_without_running_it_or_reading_weights(
    tmp_path: Path, suffix: str
) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / f"lambda{suffix}"
    lambda_model(marker).save(path)
    marker.unlink()
    (reason,) = refusal_reasons(path)
    assert "'sneaky' (class Lambda)" in reason and path.name in reason
    assert not marker.exists()


@pytest.mark.usefixtures("no_weight_reads")
def test_custom_layer_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "custom.keras"
    keras.Sequential([keras.Input((None, 3)), Doubling(name="twice"), layers.LSTM(2)]).save(path)
    (reason,) = refusal_reasons(path)
    assert "'twice' (class Doubling)" in reason and "custom" in reason


@pytest.mark.usefixtures("no_weight_reads")
def test_custom_object_inside_a_layer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "init.keras"
    small_model().save(path)

    def evil_initializer(config: dict[str, Any]) -> None:
        dense = config["config"]["layers"][-1]["config"]
        dense["kernel_initializer"] = {"module": "evil", "class_name": "Boom", "config": {}}

    edit_keras_config(path, evil_initializer)
    (reason,) = refusal_reasons(path)
    assert "'out'" in reason and "'Boom'" in reason and "'evil'" in reason


@pytest.mark.usefixtures("no_weight_reads")
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("frobnicate", 1, "option 'frobnicate'"),
        ("quantization_config", {"mode": "int8"}, "quantization_config"),
        ("lora_rank", 4, "lora_rank=4"),
    ],
)
def test_unknown_or_unsupported_options_are_refused_by_name(
    tmp_path: Path, key: str, value: Any, expected: str
) -> None:
    path = tmp_path / "option.keras"
    small_model().save(path)
    edit_keras_config(path, lambda c: c["config"]["layers"][-1]["config"].update({key: value}))
    (reason,) = refusal_reasons(path)
    assert "'out' (class Dense)" in reason and expected in reason


@pytest.mark.usefixtures("no_weight_reads")
def test_time_mixing_and_unsupported_layers_are_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "mixing.keras"
    keras.Sequential(
        [
            keras.Input((7, 3)),
            layers.Conv1D(2, 2, name="conv"),
            layers.UnitNormalization(name="unit"),
            layers.LSTM(3, go_backwards=True, return_sequences=True, name="back"),
            layers.Flatten(name="flat"),
            layers.Dense(1, activation="hard_tanh", name="odd"),
        ]
    ).save(path)
    reasons = refusal_reasons(path)
    for expected in (
        ("'conv' (class Conv1D)", "convolves"),
        ("'unit' (class UnitNormalization)", "only LSTM, GRU"),
        ("'back' (class LSTM)", "go_backwards"),
        ("'flat' (class Flatten)", "return_sequences=False"),
        ("'odd' (class Dense)", "hard_tanh"),
    ):
        assert sum(all(e in r for e in expected) for r in reasons) == 1, (expected, reasons)


@pytest.mark.usefixtures("no_weight_reads")
def test_branches_are_refused(tmp_path: Path) -> None:
    x = keras.Input((None, 3))
    h = layers.GRU(4, return_sequences=True)(x)
    merged = layers.Add(name="merge")([layers.Dense(2)(h), layers.Dense(2)(h)])
    path = tmp_path / "branch.keras"
    keras.Model(x, merged).save(path)
    reasons = refusal_reasons(path)
    assert any("'merge' (class Add)" in r and "linear chain" in r for r in reasons), reasons


def rewrite_weights_member(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path) as archive:
        kept = {n: archive.read(n) for n in archive.namelist() if not n.startswith("model.weights")}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**kept, **members}.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"model.weights.npz": b""}, ".npz"),
        ({"model.weights.json": b"{}", "model_00000.weights.h5": b""}, "sharded"),
    ],
)
def test_npz_and_sharded_weights_are_refused_saying_how_to_re_save(
    tmp_path: Path, members: dict[str, bytes], expected: str
) -> None:
    path = tmp_path / "weights.keras"
    small_model().save(path)
    rewrite_weights_member(path, members)
    with pytest.raises(ModelError, match=expected) as caught:
        read_plan(path)
    assert "save('model.keras')" in str(caught.value)


def test_weights_that_do_not_match_the_config_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.keras"
    small_model().save(path)
    edit_keras_config(path, lambda c: c["config"]["layers"][-1]["config"].update(use_bias=False))
    with pytest.raises(ModelError, match="'out' \\(class Dense\\) should hold kernel"):
        read_plan(path)


@pytest.mark.usefixtures("no_weight_reads")
@pytest.mark.parametrize(
    ("option", "expected"),
    [({"sparse": True}, "sparse input"), ({"shape_hint": 1}, "option 'shape_hint'")],
)
def test_input_layer_options_are_checked_too(
    tmp_path: Path, option: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "input.keras"
    small_model().save(path)
    edit_keras_config(path, lambda c: c["config"]["layers"][0]["config"].update(option))
    (reason,) = refusal_reasons(path)
    assert "(class InputLayer)" in reason and expected in reason
