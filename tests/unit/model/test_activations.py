"""Every supported activation name against Keras' own definition, on values that saturate."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from consumer.model import activations

VALUES = np.concatenate(
    [
        np.linspace(-12.0, 12.0, 241, dtype=np.float32),
        np.array([-60.0, -25.0, -6.0, -3.0, -1e-4, 0.0, 1e-4, 3.0, 6.0, 25.0, 60.0], np.float32),
    ]
)


@pytest.mark.parametrize("name", sorted(activations.SUPPORTED))
def test_activation_matches_keras(name: str) -> None:
    x = np.stack([VALUES, VALUES[::-1] * 0.5]).astype(np.float32)  # softmax needs rows
    expected = keras.ops.convert_to_numpy(
        keras.activations.get(name)(keras.ops.convert_to_tensor(x))
    )
    got = x.copy()
    activations.get(name)(got)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_activation_on_strided_view_writes_only_the_view() -> None:
    block = np.arange(12, dtype=np.float32).reshape(3, 4) - 6.0
    activations.get("relu")(block[:, 1:3])
    np.testing.assert_array_equal(block[:, 0], [-6.0, -2.0, 2.0])
    np.testing.assert_array_equal(block[:, 1:3], [[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])


def test_unknown_activation_is_not_supported() -> None:
    assert "hard_tanh" not in activations.SUPPORTED
    with pytest.raises(KeyError):
        activations.get("hard_tanh")
