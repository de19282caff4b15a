"""One worker on the real broker: start-up, and sustained throughput against the passthrough, the
C client's ceiling (`kcat` piped into `kcat`, `bench.peers.kcat`; at-least-once only) and what a
user would write instead (a Quix Streams application, `bench.peers.quix_scorer`).

Throughput: the input topic is filled first (single-sample records of many keys), then one
process drains it; the rate is read from the Kafka timestamps of its outputs (set when it produced
each one), over the middle 80 % of them, so start-up and the last partial batches do not count.
The service and the passthrough read the same input topic in the same run, each in its own group.
The Quix peer, about a hundred times slower, drains a tenth of it (the same keys and values): its
rate is a per-record rate all the same, and the run stays minutes long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bench import broker, workload
from bench.peers.kcat import AUTO_COMMIT_MS, KcatPipe, kcat_available
from bench.peers.quix import OUTPUT_TOPIC_CONFIG, QuixUnavailableError, quix_peer, quix_python
from bench.processes import Worker
from bench.service import Cluster, Guarantee, passthrough, pipeline, worker
from bench.stats import sustained_rate
from producer_sim.cluster.child import Child

Kind = Literal["service", "passthrough", "kcat", "quix"]
# Per guarantee, in this order; kcat has no transactions.
KINDS: dict[Guarantee, tuple[Kind, ...]] = {
    "at-least-once": ("kcat", "passthrough", "service", "quix"),
    "exactly-once": ("passthrough", "service", "quix"),
}
QUIX_SHARE = 10  # the Quix peer drains 1/QUIX_SHARE of the records
QUIX_MIN_RECORDS = 20_000
GUARANTEES: tuple[Guarantee, ...] = ("at-least-once", "exactly-once")
KEYS = 10_000  # active sequences in the throughput runs
PARTITIONS = 4


@dataclass(frozen=True)
class Startup:
    seconds_to_running: float  # process start to the "running" log line (model loaded, topics ok)
    seconds_to_ready: float  # process start to /readyz 200 (partitions assigned and restored)
    rss_bytes: int  # resident memory when ready, before any key


@dataclass(frozen=True)
class Throughput:
    kind: Kind
    guarantee: Guarantee
    commit_interval_ms: int
    records: int  # outputs written
    samples_per_s: float  # sustained, middle 80 %
    seconds: float  # the measured window
    mean_batch_records: float | None = None  # the service's micro-batches (from its metrics)
    mean_commit_ms: float | None = None  # the service's checkpoints
    # The service's loop, µs per record by stage (consume, decode, ..., checkpoint), whole run
    stage_us: dict[str, float] | None = None


def measure_startup(cluster: Cluster, timeout_s: float = 180.0) -> Startup:
    """A worker on an empty topic: how long until it runs and is ready, and its memory then."""
    topic = cluster.topics.create("startup", PARTITIONS)
    w = worker(cluster, pipeline(cluster, topic, "at-least-once", PARTITIONS), "startup").start()
    try:
        w.wait_event("running", timeout_s)
        running_at = time.monotonic() - w.started_at
        w.wait_ready(timeout_s)
        ready_at = time.monotonic() - w.started_at
        return Startup(running_at, ready_at, w.rss())
    finally:
        w.stop()


def fill_input(cluster: Cluster, records: int, seed: int = 3, name: str = "input") -> str:
    topic = cluster.topics.create(name, PARTITIONS)
    rng = np.random.default_rng(seed)
    values = workload.kafka_values(records, rng)
    keys = [workload.key_name(int(i)).encode() for i in rng.integers(0, KEYS, records)]
    broker.fill(cluster.bootstrap, topic, zip(keys, values, strict=True))
    return topic


def measure_throughput(
    cluster: Cluster,
    input_topic: str,
    kind: Kind,
    guarantee: Guarantee,
    *,
    timeout_s: float = 900.0,
    quix: Path | None = None,
) -> Throughput:
    """One process drains `input_topic` (already filled) in a new group; `quix`: the Quix peer's
    python, for that kind."""
    output_config = OUTPUT_TOPIC_CONFIG if kind == "quix" else None
    p = pipeline(cluster, input_topic, guarantee, PARTITIONS, output_config)
    ends = broker.end_offsets(cluster.bootstrap, input_topic, PARTITIONS)
    proc: Child | KcatPipe
    if kind == "quix":
        assert quix is not None, "the Quix peer's python"
        proc = quix_peer(quix, bootstrap=cluster.bootstrap, input_topic=input_topic,
                         output_topic=p.output, group=p.group, guarantee=guarantee,
                         commit_interval_ms=cluster.commit_interval_ms(guarantee),
                         model=cluster.model, workdir=cluster.workdir)  # fmt: skip
    elif kind == "kcat":
        log = cluster.workdir / f"{p.group}-kcat.log"
        proc = KcatPipe(cluster.bootstrap, input_topic, p.output, p.group, log)
    else:
        proc = worker(cluster, p) if kind == "service" else passthrough(cluster, p)
    proc.start()
    try:
        broker.wait_committed(
            cluster.bootstrap,
            p.group,
            input_topic,
            ends,
            timeout_s=timeout_s,
            check=proc.check_alive,
        )
        counters = proc.counters() if isinstance(proc, Worker) else None
        stage_us = proc.stage_us_per_record() if isinstance(proc, Worker) else None
    finally:
        code = proc.stop()
    if code != 0:
        raise RuntimeError(f"{kind} exited with {code}; see {proc.log_path}")
    stamps = broker.output_timestamps(cluster.bootstrap, p.output, PARTITIONS)
    rate = sustained_rate(stamps)
    interval = AUTO_COMMIT_MS if kind == "kcat" else cluster.commit_interval_ms(guarantee)
    return Throughput(
        kind,
        guarantee,
        interval,
        len(stamps),
        rate.per_s,
        rate.seconds,
        counters.mean_batch_records if counters else None,
        counters.mean_commit_ms if counters else None,
        stage_us,
    )


def run(
    cluster: Cluster, records: int, progress: Callable[[str], None] = print
) -> list[Throughput]:
    """kcat, passthrough, service and the Quix peer at-least-once, then passthrough, service and
    the Quix peer exactly-once, on one filled input topic (the peer on a smaller one)."""
    progress(f"e2e: filling an input topic with {records:,} records")
    topic = fill_input(cluster, records)
    missing: set[Kind] = set()
    if not kcat_available():
        progress("e2e: kcat is not on PATH (bash scripts/install-kcat.sh): its figures are null")
        missing.add("kcat")
    quix: Path | None = None
    quix_topic = ""
    quix_records = max(QUIX_MIN_RECORDS, records // QUIX_SHARE)
    try:
        quix = quix_python()
        quix_topic = fill_input(cluster, quix_records, name="quix-input")
    except QuixUnavailableError as exc:
        progress(f"e2e: the Quix Streams peer is unavailable, its figures are null: {exc}")
        missing.add("quix")
    results = []
    for guarantee in GUARANTEES:
        for kind in (k for k in KINDS[guarantee] if k not in missing):
            source, expected = (quix_topic, quix_records) if kind == "quix" else (topic, records)
            result = measure_throughput(cluster, source, kind, guarantee, quix=quix)
            if result.records != expected:
                raise RuntimeError(f"{kind} {guarantee}: {result.records} outputs for {expected}")
            results.append(result)
            progress(
                f"e2e: {kind} {guarantee}: {result.samples_per_s:,.0f} records/s "
                f"over {result.seconds:.1f} s"
            )
    return results
