"""Real Keras 2 `.h5` files (written by tf-keras at test time): the file reader's numpy step
equals the Keras 2 model on every prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from consumer.model import ModelError, ModelRefused
from consumer.model.file_plan import read_plan
from consumer.model.loader import load_keras_model
from consumer.model.numpy_step import NumpyStep
from tests.unit.model.test_exactness import TOLERANCE, stream

model_zoo_keras2 = pytest.importorskip("tests.model_zoo_keras2")


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    folder = tmp_path_factory.mktemp("keras2")
    found = {}
    for name, builder in model_zoo_keras2.KERAS2_MODELS.items():
        model = builder()
        path = folder / f"{name}.h5"
        model.save(path)
        found[name] = (model, path)
    return found


def prefix_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """Keras 2 enforces a fixed time length: prefixes run through a twin of any length."""
    if model.input_shape[1] is not None:
        free = model_zoo_keras2.tf_keras.Input((None, model.input_shape[2]))
        twin = model_zoo_keras2.tf_keras.models.clone_model(model, input_tensors=free)
        twin.set_weights(model.get_weights())
        model = twin
    outputs = []
    for t in range(1, x.shape[1] + 1):
        y = np.asarray(model(x[:, :t], training=False))
        outputs.append(y[:, -1] if y.ndim == 3 else y)
    return np.stack(outputs)


@pytest.mark.parametrize("name", sorted(model_zoo_keras2.KERAS2_MODELS))
def test_numpy_step_equals_the_keras2_model_on_every_prefix(
    keras2_files: dict[str, tuple[Any, Path]], name: str
) -> None:
    model, path = keras2_files[name]
    plan = read_plan(path)
    for seed, scale in ((0, 0.3), (1, 1.0), (2, 3.0)):
        rng = np.random.default_rng(seed)
        x = rng.normal(0.0, scale, (4, 9, plan.n_features)).astype(np.float32)
        np.testing.assert_allclose(
            stream(NumpyStep(plan), x), prefix_outputs(model, x), rtol=TOLERANCE, atol=TOLERANCE
        )


def test_keras3_cannot_load_a_keras2_recurrent_file_that_the_reader_serves(
    keras2_files: dict[str, tuple[Any, Path]],
) -> None:
    """Why the TensorFlow path could not be the oracle here: Keras 3 refuses Keras 2's
    `time_major` option, so before the file reader no Keras 2 recurrent model could be served."""
    _, path = keras2_files["user"]
    with pytest.raises(ModelError, match="time_major"):
        load_keras_model(path)
    assert read_plan(path).state_sizes == (32, 32, 16, 16)


def test_keras2_hard_sigmoid_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "hard.h5"
    model_zoo_keras2.hard_sigmoid_gates().save(path)
    with pytest.raises(ModelRefused) as caught:
        read_plan(path)
    (reason,) = caught.value.reasons
    assert "'gates' (class LSTM)" in reason and "hard_sigmoid" in reason
