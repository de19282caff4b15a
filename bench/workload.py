"""Synthetic traffic for the benchmarks: single-sample records of many interleaved sequences.

Every record carries one sample of a key drawn uniformly from the active keys, as decoded input
(`InputRecord`, for the engine) or as Kafka value bytes (for the broker runs). Offsets rise through
a pool so that the engine applies every record; a pool is replayed after resetting the table's
offsets (see `rewind`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson

from consumer.codecs.input_batch import DecodedBatch, Samples
from consumer.codecs.inputs import InputRecord, encode_input
from consumer.engine.state_table import StateTable

N_FEATURES = 3


def key_name(i: int) -> str:
    return f"dev-{i:07d}"


def keys(n: int) -> list[str]:
    return [key_name(i) for i in range(n)]


def first_samples(n_keys: int, batch: int, rng: np.random.Generator) -> Iterator[list[InputRecord]]:
    """One sample for every key, in batches: run through the engine, it fills the table."""
    offset = 0
    for start in range(0, n_keys, batch):
        stop = min(n_keys, start + batch)
        rows = rng.normal(0.0, 1.0, (stop - start, N_FEATURES)).tolist()
        yield [
            InputRecord(key_name(i), [row], False, False, None, 0, offset + j)
            for j, (i, row) in enumerate(zip(range(start, stop), rows, strict=True))
        ]
        offset += stop - start


def record_pool(
    n_keys: int, batch: int, n_batches: int, rng: np.random.Generator
) -> list[list[InputRecord]]:
    """`n_batches` micro-batches of `batch` single-sample records over `n_keys` active keys."""
    total = batch * n_batches
    picks = rng.integers(0, n_keys, total)
    rows = rng.normal(0.0, 1.0, (total, N_FEATURES)).tolist()
    names = [key_name(int(i)) for i in picks]
    records = [
        InputRecord(name, [row], False, False, None, 0, offset)
        for offset, (name, row) in enumerate(zip(names, rows, strict=True))
    ]
    return [records[i : i + batch] for i in range(0, total, batch)]


def as_columns(records: list[InputRecord], time_s: float = 1.0) -> DecodedBatch:
    """Single-sample records as the worker's batch decoder hands them to the engine: columns."""
    n = len(records)
    samples = Samples(
        [r.key for r in records],
        np.asarray([r.features[0] for r in records], np.float32),
        np.fromiter((r.partition for r in records), np.int64, n),
        np.fromiter((r.offset for r in records), np.int64, n),
        [r.ts for r in records],
        np.full(n, time_s),
        np.arange(n, dtype=np.intp),
    )
    return DecodedBatch(samples)


def rewind(table: StateTable) -> None:
    """Forget applied offsets (and pending changelog work) so a pool can be replayed."""
    table.last_offset[:] = -1
    table.take_changes()


def kafka_values(n: int, rng: np.random.Generator, *, ts: int | None = None) -> list[bytes]:
    """`n` input values of one sample each, as producers send them."""
    rows = rng.normal(0.0, 1.0, (n, N_FEATURES)).round(5).tolist()
    return [encode_input(features=row, ts=ts) for row in rows]


def stamped_value(row: list[float], ts: int) -> bytes:
    """An input value stamped with its send time (epoch ms), for latency runs."""
    return orjson.dumps({"features": row, "ts": ts})
