"""Restore rate: how fast a starting worker rebuilds its state table from the changelog.

The changelog is written directly, one valid state record per key (as a worker writes them, for
the benchmark's model), each in the partition its key hashes to; then a worker starts on the
group and restores every partition before reading input. The rate is the worker's own count and
time from its "restored" log line: reading the changelog to its end, decoding, filling the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench import broker, workload
from bench.service import Cluster, pipeline, worker
from consumer.codecs.changelog import encode_state
from consumer.engine.state_table import StateTable
from consumer.model import load_step_function

PARTITIONS = 2


@dataclass(frozen=True)
class RestoreResult:
    keys: int
    partitions: int
    record_bytes: int  # one changelog value
    write_seconds: float  # producing the changelog (not part of the rate)
    seconds: float  # the worker's restore, from its log
    keys_per_s: float
    active_sequences: int  # in the worker's table afterwards
    rss_bytes: int  # the worker's resident memory once ready, all keys restored


def state_record(model_path: str) -> bytes:
    """A changelog value for one live sequence of the model, stamped now (so no idle eviction)."""
    step_fn = load_step_function(model_path)
    table = StateTable(step_fn.state_sizes, step_fn.n_outputs)
    slot = table.allocate("template", 0)
    table.steps[slot] = 3
    table.last_offset[slot] = 2
    table.last_seen[slot] = time.time()
    table.last_output[slot] = 0.5
    for arr in table.states:
        arr[slot] = np.linspace(-0.5, 0.5, arr.shape[1], dtype=np.float32)
    return encode_state(table, "template", step_fn.version)


def run(cluster: Cluster, keys: int, progress: Callable[[str], None] = print) -> RestoreResult:
    topic = cluster.topics.create("restore-input", PARTITIONS)
    p = pipeline(cluster, topic, "at-least-once", PARTITIONS)
    value = state_record(str(cluster.model))
    progress(f"restore: writing {keys:,} state records to the changelog")
    started = time.monotonic()
    records = ((workload.key_name(i).encode(), value) for i in range(keys))
    broker.fill(cluster.bootstrap, p.changelog, records)
    write_seconds = time.monotonic() - started
    w = worker(cluster, p, "restore").start()
    try:
        restored = w.wait_event("restored", timeout_s=900)
        w.wait_ready(120)
        rss = w.rss()
    finally:
        w.stop()
    count, seconds = int(restored["records"]), float(restored["seconds"])
    if count != keys:
        raise RuntimeError(f"the worker restored {count} records, {keys} were written")
    result = RestoreResult(
        keys=keys,
        partitions=PARTITIONS,
        record_bytes=len(value),
        write_seconds=write_seconds,
        seconds=seconds,
        keys_per_s=count / seconds if seconds > 0 else 0.0,
        active_sequences=int(restored["active_sequences"]),
        rss_bytes=rss,
    )
    progress(f"restore: {count:,} keys in {seconds:.2f} s: {result.keys_per_s:,.0f} keys/s")
    return result
