"""The engine on real Keras models: many keys interleaved at random, random chunking, end markers,
resets and batch sizes; every output equals Keras on that sequence's prefix within 1e-5."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.codecs.inputs import InputRecord
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from consumer.model.numpy_step import NumpyStep
from consumer.model.plan import build_plan
from tests.stream_reference import reference, streams
from tests.unit.model.conftest import zoo_model

TOLERANCE = 1e-5
MODELS = [
    "user",
    "gru_reset_after_then_lstm",
    "gru_reset_before_then_lstm",
    "simple_rnn_relu_no_bias",
    "normalized",
    "sequence_time_distributed",
    "sequence_dense_softmax",
]


@cache
def keras_on_prefix(name: str, prefix: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
    """The oracle: `model(x[None, :t], training=False)`, its last step if it returns sequences."""
    y = np.asarray(zoo_model(name)(np.asarray([prefix], np.float32), training=False))
    return tuple(float(v) for v in (y[0, -1] if y.ndim == 3 else y[0]))


def n_features(name: str) -> int:
    return int(zoo_model(name).input_shape[-1])


values = st.floats(-3.0, 3.0, allow_nan=False, width=32)


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), batch=st.integers(1, 40), max_steps=st.sampled_from([0, 0, 4]))
def test_engine_outputs_equal_keras_on_every_prefix(
    name: str, data: st.DataObject, batch: int, max_steps: int
) -> None:
    model: Any = zoo_model(name)
    records: list[InputRecord] = data.draw(
        streams(n_features=n_features(name), values=values, keys=6, max_records=40)
    )
    step = NumpyStep(build_plan(model, name))
    engine = Engine(step, StateTable(step.state_sizes, step.n_outputs), max_steps=max_steps)
    got = []
    for i in range(0, len(records), batch):
        out = engine.process(records[i : i + batch], 0.0).outputs
        got += list(zip(out.keys, out.steps, out.values.tolist(), out.reasons, strict=True))
    expected, _ = reference(records, max_steps)
    by_key: dict[str, list[Any]] = {}
    for row in got:
        by_key.setdefault(row[0], []).append(row)
    want_by_key: dict[str, list[Any]] = {}
    for e in expected:
        want_by_key.setdefault(e.key, []).append(e)
    assert by_key.keys() == want_by_key.keys()
    for key, rows in by_key.items():
        want = want_by_key[key]
        assert [(r[1], r[3]) for r in rows] == [(e.step, e.reason) for e in want]
        for (_, _, value, _), e in zip(rows, want, strict=True):
            np.testing.assert_allclose(
                value, keras_on_prefix(name, e.prefix), rtol=TOLERANCE, atol=TOLERANCE
            )
