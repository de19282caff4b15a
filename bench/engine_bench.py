"""The engine against the known approaches: same process, same model, same records.

Every figure is `Engine.process` over micro-batches of single-sample records (grouping by key,
gathering and scattering state, bookkeeping included), except the padded-window baseline, which
is the user's own loop (`bench.baselines`). Slow baselines run on a small sample count.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from bench import workload
from bench.baselines import PaddedWindowScorer
from bench.memory import rss_bytes
from bench.models import window_model
from consumer.codecs.input_batch import DecodedBatch
from consumer.codecs.inputs import InputRecord
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from consumer.model import load_step_function
from consumer.model.step import StepFunction

Approach = Literal["numpy", "keras-batched", "keras-stateful", "padded-window"]
_FILL_BATCH = 4096
_POOL_RECORDS = 65_536  # a multiple of every batch size measured
# Each case is timed in several short runs and the best is kept, as timeit does: on a shared machine
# the others are slower because of what else runs, not because of the code.
REPEATS = 5


@dataclass(frozen=True)
class EngineCase:
    approach: Approach
    keys: int
    batch: int
    samples: int
    seconds: float  # wall clock
    cpu_seconds: float  # CPU time of this process over the same calls: what other load cannot take
    waves: int  # batched model steps taken
    runs_per_s: tuple[float, ...] = ()  # every timed run; the fields above are the best one

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def samples_per_cpu_s(self) -> float:
        return self.samples / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


@dataclass(frozen=True)
class TableMemory:
    keys: int
    table_nbytes: int  # StateTable.nbytes(): arrays plus an estimate of keys and the index
    rss_delta: int  # resident memory gained by creating and filling the table
    capacity: int

    @property
    def nbytes_per_sequence(self) -> float:
        return self.table_nbytes / self.keys

    @property
    def rss_per_sequence(self) -> float:
        return self.rss_delta / self.keys


@dataclass(frozen=True)
class EnginePlan:
    key_counts: tuple[int, ...]
    batches: tuple[int, ...]
    keras_batched: tuple[int, ...]  # batch sizes for the explicit-state Keras backend
    budget_s: float  # time spent per measured case
    baseline_samples: int  # samples through each batch-1 baseline
    baseline_keys: int


FULL = EnginePlan(
    key_counts=(1_000, 100_000, 1_000_000),
    batches=(1, 4, 16, 64, 256, 1024, 4096),
    keras_batched=(1, 64, 256, 1024, 4096),
    budget_s=1.0,
    baseline_samples=600,
    baseline_keys=100_000,
)
QUICK = EnginePlan(
    key_counts=(100_000, 1_000_000),
    batches=(1, 256, 1024, 4096),
    keras_batched=(256, 4096),
    budget_s=0.3,
    baseline_samples=200,
    baseline_keys=100_000,
)


@dataclass(frozen=True)
class EngineResults:
    cases: tuple[EngineCase, ...]
    memory: TableMemory


def filled_table(step_fn: StepFunction, n_keys: int, seed: int) -> tuple[StateTable, Engine]:
    """A table holding `n_keys` live sequences, each advanced by one sample through the engine."""
    table = StateTable(step_fn.state_sizes, step_fn.n_outputs)
    engine = Engine(step_fn, table)
    rng = np.random.default_rng(seed)
    for batch in workload.first_samples(n_keys, _FILL_BATCH, rng):
        engine.process(batch, 0.0)
    workload.rewind(table)
    return table, engine


def measured_table(step_fn: StepFunction, n_keys: int, seed: int) -> tuple[Engine, TableMemory]:
    """`filled_table`, with the resident memory it took (measured around its construction)."""
    gc.collect()
    before = rss_bytes()
    table, engine = filled_table(step_fn, n_keys, seed)
    gc.collect()
    memory = TableMemory(n_keys, table.nbytes(), rss_bytes() - before, table.capacity)
    return engine, memory


def time_engine(
    engine: Engine,
    approach: Approach,
    pool: Sequence[Sequence[InputRecord]] | Sequence[DecodedBatch],
    budget_s: float,
    *,
    repeats: int = REPEATS,
    warmup: int | None = None,
) -> EngineCase:
    """`Engine.process` (`process_batch` for a pool of decoded columns, the worker's path) over
    the pool, batch after batch, in `repeats` runs of `budget_s / repeats`
    wall-clock seconds each (at least one batch); only the calls are timed and the best run is
    kept. The first `warmup` records (default: a whole batch) grow buffers and trace compiled
    functions first, untimed."""
    workload.rewind(engine.table)
    first = pool[0]
    if isinstance(first, DecodedBatch):
        engine.process_batch(first)
    else:
        engine.process(first[:warmup], 0.0)
    runs: list[EngineCase] = []
    cursor = 0
    for _ in range(repeats):
        samples = waves = batches = 0
        seconds = cpu = 0.0
        while batches == 0 or seconds < budget_s / repeats:
            if cursor == 0:
                workload.rewind(engine.table)  # offsets start again from the pool's first
            batch, cursor = pool[cursor], (cursor + 1) % len(pool)
            c0, t0 = time.process_time(), time.perf_counter()
            result = (
                engine.process_batch(batch)
                if isinstance(batch, DecodedBatch)
                else engine.process(batch, 1.0)
            )
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            samples += result.samples
            waves += result.waves
            batches += 1
        runs.append(
            EngineCase(approach, len(engine.table), len(pool[0]), samples, seconds, cpu, waves)
        )
    workload.rewind(engine.table)
    return _best(runs)


def time_padded_window(
    scorer: PaddedWindowScorer, records: Sequence[InputRecord], keys: int, repeats: int = REPEATS
) -> EngineCase:
    """The window baseline over `records`, split into `repeats` timed runs; the best is kept."""
    scorer.score(records[:2])  # trace the call once, untimed
    runs = []
    size = max(1, len(records) // repeats)
    for start in range(0, size * repeats, size):
        chunk = records[start : start + size]
        c0, t0 = time.process_time(), time.perf_counter()
        scorer.score(chunk)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        runs.append(EngineCase("padded-window", keys, 1, len(chunk), seconds, cpu, len(chunk)))
    return _best(runs)


def _best(runs: Sequence[EngineCase]) -> EngineCase:
    best = max(runs, key=lambda case: case.samples_per_s)
    return replace(best, runs_per_s=tuple(round(case.samples_per_s, 1) for case in runs))


def describe(case: EngineCase) -> str:
    return (
        f"engine: {case.approach}, {case.keys:,} keys, batch {case.batch}: "
        f"{case.samples_per_s:,.0f} samples/s ({case.samples_per_cpu_s:,.0f} per CPU second)"
    )


def run(
    model_path: Path,
    plan: EnginePlan,
    *,
    seed: int = 1,
    progress: Callable[[str], None] = print,
) -> EngineResults:
    step_fn = load_step_function(model_path, "numpy")
    cases: list[EngineCase] = []
    memory: TableMemory | None = None
    for n_keys in sorted(plan.key_counts, reverse=True):
        progress(f"engine: filling a table with {n_keys:,} keys")
        engine, table_memory = measured_table(step_fn, n_keys, seed)
        if n_keys == max(plan.key_counts):
            memory = table_memory
        rng = np.random.default_rng(seed + n_keys)
        for batch in plan.batches:
            pool = workload.record_pool(n_keys, batch, _POOL_RECORDS // batch, rng)
            columns = [workload.as_columns(records) for records in pool]
            cases.append(time_engine(engine, "numpy", columns, plan.budget_s))
            progress(describe(cases[-1]))
        if n_keys == plan.baseline_keys:
            cases += _keras_cases(model_path, engine.table, plan, rng, progress)
        del engine
        gc.collect()
    assert memory is not None
    return EngineResults(tuple(cases), memory)


def _keras_cases(
    model_path: Path,
    table: StateTable,
    plan: EnginePlan,
    rng: np.random.Generator,
    progress: Callable[[str], None],
) -> list[EngineCase]:
    """The Keras backends and the window baseline, on the same table and the same kind of data."""
    n_keys = plan.baseline_keys
    cases: list[EngineCase] = []
    batched = Engine(load_step_function(model_path, "keras-batched"), table)
    for batch in plan.keras_batched:
        pool = workload.record_pool(n_keys, batch, max(1, 8192 // batch), rng)
        cases.append(time_engine(batched, "keras-batched", pool, plan.budget_s))
        progress(describe(cases[-1]))

    # Batch-1 approaches: records still arrive in micro-batches, but each sample costs one call.
    few = plan.baseline_samples
    stateful = Engine(load_step_function(model_path, "keras-stateful"), table)
    pool = workload.record_pool(n_keys, few // REPEATS, REPEATS, rng)  # one batch per run
    case = time_engine(stateful, "keras-stateful", pool, 0.0, warmup=4)
    cases.append(replace(case, batch=1))  # one sample per model call, whatever the micro-batch
    progress(describe(cases[-1]))

    scorer = PaddedWindowScorer(window_model(), workload.N_FEATURES)
    records = workload.record_pool(n_keys, few, 1, rng)[0]
    cases.append(time_padded_window(scorer, records, n_keys))
    progress(describe(cases[-1]))
    return cases
