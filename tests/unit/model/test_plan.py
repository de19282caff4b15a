"""The plan's contents, its description and the model version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from consumer.model import describe_plan, load_plan
from consumer.model.numpy_step import NumpyStep
from consumer.model.plan import build_plan
from consumer.model.specs import IdentitySpec, RecurrentSpec
from tests.unit.model.conftest import zoo_model


def test_user_plan_lists_layers_states_and_identity_layers() -> None:
    plan = build_plan(zoo_model("user"), "user.keras")
    assert (plan.n_features, plan.n_outputs, plan.trained_length) == (3, 1, 7)
    assert plan.state_sizes == (32, 32, 16, 16)
    recurrent = plan.recurrent
    assert [(r.kind, r.units, r.return_sequences) for r in recurrent] == [
        ("lstm", 32, True),
        ("lstm", 16, False),
    ]
    assert sum(isinstance(layer, IdentitySpec) for layer in plan.layers) == 2
    text = describe_plan(plan)
    for expected in (
        "version: " + plan.version,
        "features per sample: 3",
        "outputs per sample: 1",
        "4 tensors, 96 float32 values",
        "(Dropout): identity at inference",
        "recurrent_activation sigmoid",
        "returns its last output",
        "(Dense): 1 units, activation sigmoid",
    ):
        assert expected in text, text


def test_stateless_model_is_allowed_and_marked() -> None:
    plan = build_plan(zoo_model("stateless"), "stateless")
    assert plan.stateless and plan.state_sizes == ()
    assert "no recurrent layer" in describe_plan(plan)


def test_gru_weights_are_extracted_as_configured() -> None:
    plan = build_plan(zoo_model("gru_reset_before_then_lstm"), "gru")
    gru = plan.recurrent[0]
    assert isinstance(gru, RecurrentSpec)
    assert (gru.kind, gru.reset_after, gru.n_inputs, gru.units) == ("gru", False, 4, 6)
    assert gru.kernel.shape == (4, 18) and gru.recurrent_kernel.shape == (6, 18)
    assert gru.bias is not None and gru.bias.shape == (18,)
    assert gru.kernel.dtype == np.float32


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")
def test_layer_normalization_rms_scaling_is_supported_exactly() -> None:
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            layers.GRU(4, return_sequences=True),
            layers.LayerNormalization(rms_scaling=True),
            layers.Dense(1),
        ]
    )
    for weight in model.weights:
        weight.assign(np.random.default_rng(3).normal(0, 1.2, tuple(weight.shape)))
    plan = build_plan(model, "rms")
    x = np.random.default_rng(4).normal(0, 1, (3, 5, 3)).astype(np.float32)
    states = [np.zeros((3, s), np.float32) for s in plan.state_sizes]
    step = NumpyStep(plan)
    for t in range(5):
        got = step.step(x[:, t], states)
        want = np.asarray(model(x[:, : t + 1], training=False))[:, -1]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_legacy_h5_file_gives_the_same_plan_and_outputs(tmp_path: Path) -> None:
    model = zoo_model("gru_reset_after_then_lstm")
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    from_keras, from_h5 = load_plan(tmp_path / "m.keras"), load_plan(tmp_path / "m.h5")
    assert from_h5.state_sizes == from_keras.state_sizes
    assert from_h5.version == from_keras.version
    x = np.random.default_rng(2).normal(0, 1, (4, from_h5.n_features)).astype(np.float32)
    outputs = []
    for plan in (from_keras, from_h5):
        states = [np.zeros((4, size), np.float32) for size in plan.state_sizes]
        outputs.append(NumpyStep(plan).step(x, states).copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_version_is_stable_across_save_and_load(tmp_path: Path) -> None:
    model = zoo_model("user")
    in_memory = build_plan(model, "memory").version
    assert len(in_memory) == 8 and int(in_memory, 16) >= 0
    keras_path = tmp_path / "m.keras"
    model.save(keras_path)
    first = load_plan(keras_path).version
    again = tmp_path / "again.keras"
    keras.saving.load_model(keras_path, compile=False).save(again)
    assert first == in_memory == load_plan(again).version


def test_version_changes_when_one_weight_changes(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    zoo_model("gru_reset_after_then_lstm").save(path)
    model = keras.saving.load_model(path, compile=False)
    before = build_plan(model, "m").version
    kernel = model.layers[-1].kernel
    value = np.asarray(kernel).copy()
    value[0, 0] = np.nextafter(value[0, 0], np.float32(np.inf))
    kernel.assign(value)
    assert build_plan(model, "m").version != before


def test_importing_the_model_package_does_not_import_tensorflow() -> None:
    code = (
        "import sys, consumer.model, consumer.training.synthetic; "
        "import consumer.training.scoring_metrics; "
        "heavy = [m for m in ('tensorflow', 'keras', 'h5py') if m in sys.modules]; "
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
