"""Throughput with 1, 2 and 3 workers of one group on a 6-partition topic.

The workers start on an empty topic and are left to settle (every one ready, the partitions
spread evenly), so no rebalance falls inside the measurement; then the backlog is produced as
fast as the broker takes it, and the rate is measured on the outputs written after the last input
was acknowledged: the workers draining a backlog, together. On a 2-core machine the workers share
two cores with the broker (and, until it is done, the producer): more workers cannot add CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from bench import broker, workload
from bench.processes import Worker
from bench.service import Cluster, pipeline, worker
from bench.stats import sustained_rate
from producer_sim.cluster.processes import wait_for

PARTITIONS = 6
KEYS = 10_000
_TRIM = 0.05


@dataclass(frozen=True)
class ScalingPoint:
    workers: int
    records: int
    samples_per_s: float
    seconds: float  # the measured window
    drained_after_produce: int  # outputs written after the backlog was complete


def _settled(workers: Sequence[Worker]) -> bool | None:
    """Every worker ready with an even share of the partitions."""
    share = PARTITIONS // len(workers)
    for w in workers:
        w.check_alive()
        status, body = w.http("/readyz")
        if status != 200 or orjson.loads(body).get("assigned") != share:
            return None
    return True


def measure(cluster: Cluster, n_workers: int, records: int) -> ScalingPoint:
    topic = cluster.topics.create("scaling", PARTITIONS)
    p = pipeline(cluster, topic, "at-least-once", PARTITIONS)
    workers = [worker(cluster, p, f"s{i}").start() for i in range(n_workers)]
    try:
        wait_for(lambda: _settled(workers), 300, f"{n_workers} workers to settle")
        rng = np.random.default_rng(5)
        values = workload.kafka_values(records, rng)
        keys = [workload.key_name(int(i)).encode() for i in rng.integers(0, KEYS, records)]
        broker.fill(cluster.bootstrap, topic, zip(keys, values, strict=True))
        produced_ms = time.time() * 1000
        ends = broker.end_offsets(cluster.bootstrap, topic, PARTITIONS)

        def check() -> None:
            for w in workers:
                w.check_alive()

        broker.wait_committed(cluster.bootstrap, p.group, topic, ends, timeout_s=900, check=check)
    finally:
        for w in workers:
            w.stop()
    stamps = broker.output_timestamps(cluster.bootstrap, p.output, PARTITIONS)
    if len(stamps) != records:
        raise RuntimeError(f"{len(stamps)} outputs for {records} records")
    after = stamps[stamps >= produced_ms]
    rate = sustained_rate(after, trim=_TRIM)
    return ScalingPoint(n_workers, records, rate.per_s, rate.seconds, len(after))


def run(
    cluster: Cluster,
    records: int,
    counts: Sequence[int] = (1, 2, 3),
    progress: Callable[[str], None] = print,
) -> list[ScalingPoint]:
    points = []
    for n in counts:
        points.append(measure(cluster, n, records))
        progress(
            f"scaling: {n} worker(s): {points[-1].samples_per_s:,.0f} records/s over "
            f"{points[-1].seconds:.1f} s ({points[-1].drained_after_produce:,} drained)"
        )
    return points
