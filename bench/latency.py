"""End-to-end latency under an open-loop load at fractions of the measured maximum.

One worker, ready on an empty topic; for each load level, `bench.load` sends records at a fixed
rate, each stamped with its send time (`ts`, which the service echoes on the output), while a
downstream reader in this process (read_committed, as exactly-once consumers must read) takes the
outputs. Latency = the time the reader got an output minus its `ts`: batching, scoring, producing,
and for exactly-once the wait for the transaction to commit, all included. The first seconds of
each level are left out (the service and the load settle), and a warm-up level runs first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.broker import unique
from bench.processes import Worker
from bench.service import Cluster, Guarantee, pipeline, worker
from bench.stats import percentiles
from producer_sim.cluster.child import Child

PARTITIONS = 4
KEYS = 10_000


@dataclass(frozen=True)
class LatencyPoint:
    guarantee: Guarantee
    commit_interval_ms: int
    load_fraction: float  # of the maximum rate measured for this guarantee
    target_rate: float  # records per second sent
    sent: int
    received: int  # outputs read downstream (all of them, the settling seconds included)
    measured: int  # outputs the percentiles are over
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # The same up to the worker producing the output (its Kafka timestamp): without the wait for
    # the delivery, the transaction commit and the reader's fetch.
    produced_p50_ms: float
    produced_p99_ms: float
    sender_worst_lag_s: float  # how far the load generator itself ever fell behind its schedule
    mean_batch_records: float  # the worker's micro-batches during the level
    mean_commit_ms: float  # the worker's checkpoints during the level (the loop waits for them)
    # What the fractions are of: the rate scored with the sender and the reader running beside
    # the worker (`load_fraction` is of this), and the rate the throughput run drained a backlog.
    live_capacity: float
    drain_rate: float


def downstream_reader(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> Consumer:
    """A reader of the outputs from their beginning, read_committed as exactly-once consumers
    must read (at-least-once outputs are not transactional: it sees them at once)."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("latency-reader"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
        }
    )
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return reader


@dataclass
class _Observed:
    received: int = 0
    read_ms: list[float] = field(default_factory=list)  # read time minus ts
    produced_ms: list[float] = field(default_factory=list)  # output timestamp minus ts
    produced_at_ms: list[float] = field(default_factory=list)  # every output's timestamp (ms)


def _level(
    cluster: Cluster,
    w: Worker,
    reader: Consumer,
    topic: str,
    *,
    rate: float,
    seconds: float,
    settle_s: float,
) -> tuple[dict[str, float], _Observed]:
    """One load level: the sender's summary, and what the reader saw after settling."""
    log = cluster.workdir / f"{unique('load')}.log"
    argv = ["-m", "bench.load", "--bootstrap-servers", cluster.bootstrap, "--topic", topic]
    argv += ["--rate", f"{rate:.1f}", "--seconds", str(seconds), "--keys", str(KEYS)]
    load = Child(argv, log).start()
    settled_ms = time.time() * 1000 + settle_s * 1000
    seen = _Observed()
    summary: dict[str, float] | None = None
    deadline = time.monotonic() + seconds + 120
    while summary is None or seen.received < summary["sent"]:
        if time.monotonic() > deadline:
            break  # what was received is reported; the shortfall shows in `received`
        # Small reads: a read waits until it has its count or its timeout, and an output that
        # arrived at its start would count the rest of that wait as the service's latency.
        msgs = reader.consume(256, timeout=0.005)
        now_ms = time.time() * 1000
        for msg in msgs:
            if msg.error() is None:
                ts = orjson.loads(msg.value() or b"{}").get("ts")
                seen.received += 1
                seen.produced_at_ms.append(msg.timestamp()[1])
                if ts is not None and ts >= settled_ms:
                    seen.read_ms.append(now_ms - ts)
                    seen.produced_ms.append(msg.timestamp()[1] - ts)
        if summary is None and not load.alive():
            if load.stop() != 0:
                raise RuntimeError(f"load generator failed; see {log}")
            summary = orjson.loads(log.read_bytes().splitlines()[-1])
        w.check_alive()
    if summary is None:
        load.stop()
        raise TimeoutError("load generator did not finish")
    return summary, seen


def live_capacity(produced_at_ms: Sequence[float], from_ms: float, to_ms: float) -> float:
    """Outputs per second produced within [from_ms, to_ms): under an offered load above what the
    worker keeps up with, the rate it sustains with the sender and the reader on the machine."""
    if to_ms <= from_ms:
        raise ValueError("an empty window")
    stamps = np.asarray(produced_at_ms, dtype=np.float64)
    inside = int(((stamps >= from_ms) & (stamps < to_ms)).sum())
    return inside / ((to_ms - from_ms) / 1000)


def run(
    cluster: Cluster,
    guarantee: Guarantee,
    max_rate: float,
    fractions: Sequence[float],
    *,
    seconds: float,
    settle_s: float,
    warmup_s: float,
    progress: Callable[[str], None] = print,
) -> list[LatencyPoint]:
    topic = cluster.topics.create("latency", PARTITIONS)
    p = pipeline(cluster, topic, guarantee, PARTITIONS)
    w = worker(cluster, p, "latency").start()
    points = []
    try:
        w.wait_ready(180)
        reader = downstream_reader(cluster.bootstrap, p.output)
        try:
            # Not measured: the broker's and the worker's first seconds under live traffic (JIT
            # compilation, first-seen keys) would otherwise fall on the first level.
            _level(
                cluster,
                w,
                reader,
                topic,
                rate=min(fractions) * max_rate,
                seconds=warmup_s,
                settle_s=warmup_s,
            )
            # The levels are fractions of what the worker sustains with the sender and this
            # reader on the same cores, measured under the drain rate offered as live load: the
            # drain rate itself, with the cores to the worker and broker alone, is not reachable
            # here (at half of it the worker took full micro-batches, saturated).
            started_ms = time.time() * 1000
            _, seen_capacity = _level(
                cluster, w, reader, topic, rate=max_rate, seconds=seconds, settle_s=settle_s
            )
            window = (started_ms + settle_s * 1000, started_ms + seconds * 1000)
            capacity = live_capacity(seen_capacity.produced_at_ms, *window)
            progress(
                f"latency: {guarantee} sustains {capacity:,.0f} records/s with the sender and "
                f"reader beside it (drain rate {max_rate:,.0f}/s)"
            )
            for fraction in fractions:
                rate = fraction * capacity
                before = w.counters()
                summary, seen = _level(
                    cluster, w, reader, topic, rate=rate, seconds=seconds, settle_s=settle_s
                )
                counters = w.counters().since(before)
                pct = percentiles(seen.read_ms or [np.nan])
                at_worker = percentiles(seen.produced_ms or [np.nan])
                points.append(
                    LatencyPoint(
                        guarantee,
                        cluster.commit_interval_ms(guarantee),
                        fraction,
                        rate,
                        int(summary["sent"]),
                        seen.received,
                        len(seen.read_ms),
                        pct.p50_ms,
                        pct.p95_ms,
                        pct.p99_ms,
                        pct.max_ms,
                        at_worker.p50_ms,
                        at_worker.p99_ms,
                        float(summary["worst_lag_s"]),
                        counters.mean_batch_records,
                        counters.mean_commit_ms,
                        capacity,
                        max_rate,
                    )
                )
                progress(
                    f"latency: {guarantee} at {fraction:.0%} ({rate:,.0f}/s): p50 "
                    f"{pct.p50_ms:.1f} ms, p95 {pct.p95_ms:.1f} ms, p99 {pct.p99_ms:.1f} ms "
                    f"(at the worker: p50 {at_worker.p50_ms:.1f}, p99 {at_worker.p99_ms:.1f}; "
                    f"batches of {counters.mean_batch_records:.0f}, commits of "
                    f"{counters.mean_commit_ms:.0f} ms: {_steps(counters.mean_step_ms())})"
                )
        finally:
            reader.close()
    finally:
        w.stop()
    return points


def _steps(ms: dict[str, float]) -> str:
    return ", ".join(f"{step} {v:.1f}" for step, v in sorted(ms.items(), key=lambda i: -i[1]))
