"""The plan read from the file without Keras equals the plan extracted from the model Keras loads
from the same file: same records, bit-identical weights, same version, and the same outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

from consumer.model import ModelRefused
from consumer.model.file_plan import read_plan
from consumer.model.loader import load_keras_model
from consumer.model.numpy_step import NumpyStep
from consumer.model.plan import build_plan
from tests import model_zoo
from tests.plan_compare import plan_differences
from tests.unit.model.conftest import zoo_model
from tests.unit.model.test_exactness import TOLERANCE, keras_prefix_outputs, stream


def keras_plan(path: Path) -> Any:
    return build_plan(load_keras_model(path), str(path))


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name in model_zoo.EXACTNESS_MODELS:
        for suffix in (".keras", ".h5"):
            path = folder / f"{name}{suffix}"
            zoo_model(name).save(path)
            paths[name, suffix] = path
    return paths


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", sorted(model_zoo.EXACTNESS_MODELS))
def test_plan_and_version_equal_the_keras_path(
    zoo_files: dict[tuple[str, str], Path], name: str, suffix: str
) -> None:
    path = zoo_files[name, suffix]
    plan = read_plan(path)
    assert plan_differences(plan, keras_plan(path)) == []
    # The version is also the in-memory model's: a deployed worker keeps its restored state.
    assert plan.version == build_plan(zoo_model(name), name).version


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", sorted(model_zoo.EXACTNESS_MODELS))
def test_numpy_step_on_the_file_plan_equals_keras_on_every_prefix(
    zoo_files: dict[tuple[str, str], Path], name: str, suffix: str
) -> None:
    plan = read_plan(zoo_files[name, suffix])
    x = np.random.default_rng(5).normal(0.0, 1.5, (4, 9, plan.n_features)).astype(np.float32)
    expected = keras_prefix_outputs(zoo_model(name), x)
    np.testing.assert_allclose(stream(NumpyStep(plan), x), expected, rtol=TOLERANCE, atol=TOLERANCE)


def repeated_classes(nested: bool) -> Any:
    """Several layers of one class at several depths, so that a weight taken from the wrong
    class counter (or by layer name) lands on a layer of the same shape and shows."""
    inner = keras.Sequential(
        [
            keras.Input((None, 4)),
            layers.Dense(4, name="inner_dense"),
            layers.LSTM(4, return_sequences=True, name="inner_lstm"),
        ],
        name="inner",
    )
    stack: list[Any] = [
        keras.Input((None, 4)),
        layers.Dense(4, name="d_a"),
        layers.LSTM(4, return_sequences=True, name="l_a"),
        layers.TimeDistributed(layers.Dense(4), name="td_a"),
        layers.Dense(4, name="d_b"),
        layers.RNN(layers.GRUCell(4), return_sequences=True, name="rnn_a"),
        layers.LSTM(4, return_sequences=True, name="l_b"),
    ]
    if nested:
        stack.append(inner)
    stack += [
        layers.TimeDistributed(layers.Dense(4), name="td_b"),
        layers.RNN(layers.GRUCell(4), return_sequences=True, name="rnn_b"),
        layers.BatchNormalization(name="bn_a"),
        layers.LSTM(4, name="l_c"),
        layers.BatchNormalization(name="bn_b"),
        layers.Dense(2, name="d_c"),
    ]
    return model_zoo.randomize(keras.Sequential(stack), seed=21)


@pytest.mark.parametrize(
    ("nested", "suffix"), [(True, ".keras"), (False, ".keras"), (False, ".h5")]
)
def test_weights_follow_keras_class_counters_not_layer_names(
    tmp_path: Path, nested: bool, suffix: str
) -> None:
    model = repeated_classes(nested)
    path = tmp_path / f"repeated{suffix}"
    model.save(path)
    plan = read_plan(path)
    assert plan_differences(plan, keras_plan(path)) == []
    assert plan.version == build_plan(model, "memory").version
    x = np.random.default_rng(3).normal(0.0, 1.0, (3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        stream(NumpyStep(plan), x),
        keras_prefix_outputs(model, x),
        rtol=TOLERANCE,
        atol=TOLERANCE,
    )


def test_functional_model_with_a_nested_model_reads_the_same_plan(tmp_path: Path) -> None:
    inner = keras.Sequential(
        [keras.Input((None, 3)), layers.GRU(4, return_sequences=True), layers.Dense(3)]
    )
    inputs = keras.Input((None, 3))
    x = layers.Dense(3)(inputs)
    x = inner(x)
    x = layers.LSTM(2)(x)
    model = model_zoo.randomize(keras.Model(inputs, layers.Dense(1)(x)), seed=4)
    path = tmp_path / "functional.keras"
    model.save(path)
    assert plan_differences(read_plan(path), keras_plan(path)) == []


def test_a_nested_model_in_a_legacy_h5_file_is_refused_saying_to_re_save(tmp_path: Path) -> None:
    path = tmp_path / "nested.h5"
    repeated_classes(nested=True).save(path)
    with pytest.raises(ModelRefused) as caught:
        read_plan(path)
    assert any("'inner' (class Sequential)" in r and ".keras" in r for r in caught.value.reasons)
