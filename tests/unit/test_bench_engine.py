"""The engine benchmark's plumbing on tiny sizes, with the exact prefix-sum step (no Keras)."""

from __future__ import annotations

import numpy as np

from bench import engine_bench, workload
from consumer.codecs.inputs import InputRecord, decode_input
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from tests.prefix_sum_step import PrefixSumStep


def test_filled_table_holds_every_key_after_one_sample_each() -> None:
    table, engine = engine_bench.filled_table(PrefixSumStep(), 5_000, seed=1)
    assert len(table) == 5_000
    assert engine.table is table
    found = [table.slot_of(workload.key_name(i)) for i in range(5_000)]
    slots = [slot for slot in found if slot is not None]
    assert len(slots) == 5_000
    assert (table.steps[slots] == 1).all()
    assert (table.states[1][slots, 0] == 1.0).all()  # the prefix-sum step counts samples
    assert not table.dirty  # changelog work is not part of the measurement
    assert (table.last_offset == -1).all()  # ready for any pool of records


def test_record_pool_draws_known_keys_with_rising_offsets() -> None:
    pool = workload.record_pool(100, 16, 4, np.random.default_rng(0))
    assert [len(batch) for batch in pool] == [16] * 4
    records = [r for batch in pool for r in batch]
    assert [r.offset for r in records] == list(range(64))
    assert {r.key for r in records} <= set(workload.keys(100))
    assert all(len(r.features) == 1 and len(r.features[0]) == 3 for r in records)


def test_time_engine_counts_every_sample_of_its_best_run_and_rewinds() -> None:
    step = PrefixSumStep()
    table, engine = engine_bench.filled_table(step, 50, seed=2)
    pool = workload.record_pool(50, 8, 3, np.random.default_rng(3))
    case = engine_bench.time_engine(engine, "numpy", pool, budget_s=0.0)
    # No budget: each of the runs is exactly one batch of 8 single-sample records.
    assert len(case.runs_per_s) == engine_bench.REPEATS
    assert case.samples == 8 and case.batch == 8 and case.keys == 50
    assert abs(case.samples_per_s - max(case.runs_per_s)) < 0.1
    assert case.waves >= 1
    # The warm-up batch plus one batch per run were applied; offsets are forgotten afterwards.
    applied = table.steps.sum() - 50
    assert applied == 8 * (1 + engine_bench.REPEATS)
    assert (table.last_offset[: table.capacity] == -1).all()


def test_time_engine_replays_a_pool_longer_than_its_length() -> None:
    """A budget longer than one pass replays the pool: every replayed record is applied again."""
    table = StateTable(PrefixSumStep().state_sizes, 2)
    engine = Engine(PrefixSumStep(), table)
    pool = workload.record_pool(10, 4, 2, np.random.default_rng(4))
    case = engine_bench.time_engine(engine, "numpy", pool, budget_s=0.05, repeats=1)
    assert case.samples % 4 == 0 and case.samples > 8
    assert int(table.steps.sum()) == 4 + case.samples  # nothing skipped as a replay


def test_kafka_values_are_valid_single_samples() -> None:
    values = workload.kafka_values(20, np.random.default_rng(5), ts=1_700_000_000_000)
    for offset, value in enumerate(values):
        record = decode_input(b"k", value, n_features=3, partition=0, offset=offset)
        assert isinstance(record, InputRecord), record
        assert len(record.features) == 1
        assert record.ts == 1_700_000_000_000
