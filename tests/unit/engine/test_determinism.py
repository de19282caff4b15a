"""The same prefix gives the same float32 bits, whatever the micro-batch around it.

A row's score must not depend on which other sequences shared its batch, how many there were, on
which engine path it ran (the fast path of plain samples or the general one), how large batches
were cut into blocks, or on whether its state came back from the changelog. Then `replay`
reproduces live outputs bit for bit and an at-least-once duplicate equals its first emission.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.codecs import changelog as changelog_codec
from consumer.codecs.inputs import InputRecord
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from consumer.model.numpy_step import CHUNK_ROWS, NumpyStep
from consumer.model.plan import build_plan
from tests.stream_reference import streams
from tests.unit.engine.test_scoring_exactness import MODELS
from tests.unit.model.conftest import zoo_model

values = st.floats(-3.0, 3.0, allow_nan=False, width=32)
Ident = tuple[str, int, int, str | None]  # key, offset, step, reason


def _step(name: str) -> NumpyStep:
    return NumpyStep(build_plan(zoo_model(name), name))


@pytest.mark.parametrize("name", MODELS)
def test_a_row_gives_the_same_bits_in_any_batch(name: str) -> None:
    step = _step(name)
    rng = np.random.default_rng(7)
    rows = CHUNK_ROWS + 300
    x = rng.normal(0.0, 1.5, (rows, step.n_features)).astype(np.float32)
    states = [rng.normal(0.0, 0.7, (rows, size)).astype(np.float32) for size in step.state_sizes]
    whole_states = [s.copy() for s in states]
    whole = step.step(x, whole_states).copy()
    # Every row alone, then random subsets in random order, of every size from 1 up.
    for size in (1, 2, 3, 31, 33, 100, 700):
        picked = rng.permutation(rows)[:size]
        part_states = [np.ascontiguousarray(s[picked]) for s in states]
        got = step.step(np.ascontiguousarray(x[picked]), part_states)
        np.testing.assert_array_equal(got, whole[picked], err_msg=f"batch of {size}")
        for a, b in zip(part_states, whole_states, strict=True):
            np.testing.assert_array_equal(a, b[picked], err_msg=f"state, batch of {size}")


def _outputs(engine: Engine, batches: list[list[InputRecord]]) -> dict[Ident, bytes]:
    got: dict[Ident, bytes] = {}
    for batch in batches:
        out = engine.process(batch, 0.0).outputs
        for i, key in enumerate(out.keys):
            got[(key, out.offsets[i], out.steps[i], out.reasons[i])] = out.values[i].tobytes()
    return got


def _cut(records: list[InputRecord], sizes: list[int]) -> list[list[InputRecord]]:
    batches, i = [], 0
    for size in sizes:
        if i >= len(records):
            break
        batches.append(records[i : i + size])
        i += size
    if i < len(records):
        batches.append(records[i:])
    return batches


def _restored(engine: Engine, version: str) -> Engine:
    """A fresh engine whose table holds what the changelog would give back."""
    old = engine.table
    table = StateTable(old.state_sizes, old.n_outputs)
    for key in old.active_keys():
        slot = old.slot_of(key)
        assert slot is not None
        value = changelog_codec.encode_state(old, key, version)
        changelog_codec.apply_record(table, key, int(old.partition[slot]), value, version)
    for key, ended in old.ended.items():
        changelog_codec.apply_record(
            table, key, ended.partition, changelog_codec.encode_ended(ended, version), version
        )
    return Engine(engine.step_fn, table, max_steps=engine.max_steps)


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rebatching_and_restores_give_identical_bytes(name: str, data: st.DataObject) -> None:
    step: Any = _step(name)
    records: list[InputRecord] = data.draw(
        streams(n_features=step.n_features, values=values, keys=12, max_records=80)
    )
    sizes = st.lists(st.integers(1, 90), min_size=1, max_size=40)
    first = _outputs(Engine(step, StateTable(step.state_sizes, step.n_outputs)), [records])

    engine = Engine(step, StateTable(step.state_sizes, step.n_outputs))
    second: dict[Ident, bytes] = {}
    batches = _cut(records, data.draw(sizes))
    restore_after = data.draw(st.sets(st.integers(0, len(batches) - 1), max_size=3))
    for i, batch in enumerate(batches):
        second.update(_outputs(engine, [batch]))
        if i in restore_after:
            engine = _restored(engine, step.version)
    assert second.keys() == first.keys()
    differing = [k for k in first if first[k] != second[k]]
    assert not differing, f"{len(differing)} outputs differ in their bits, e.g. {differing[:3]}"
