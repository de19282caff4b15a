"""The Keras oracle of the reliability scenarios agrees with the replay command on the same
records: two independent readings of the contract (sequence semantics and model) meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.reliability.accounting import Sent, expect, same
from tests.service_harness import interleaved_stream, save_user_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_user_model(tmp_path_factory.mktemp("oracle") / "m.keras", seed=5, units=(8, 4))


@pytest.mark.parametrize("max_steps", [0, 4])
def test_keras_and_replay_give_the_same_outputs(
    model: Path, tmp_path: Path, max_steps: int
) -> None:
    records = interleaved_stream(np.random.default_rng(9), 150, max_len=12)
    # Two partitions, as a topic would hold them: a key's records keep their order.
    sent = [Sent(key.encode(), value, hash(key) % 2, i) for i, (key, value) in enumerate(records)]
    got = expect(sent, model, workdir=tmp_path, keras=True, max_steps=max_steps)
    assert got.replay is not None and len(got.outputs)
    keras, replayed = got.outputs.as_dict(), got.replay.as_dict()
    assert keras.keys() == replayed.keys()
    assert all(same(keras[i], replayed[i]) for i in keras)
    if max_steps:
        assert max(i[3] for i in keras) == max_steps
        assert any(o.reason == "max_steps" for o in keras.values())
