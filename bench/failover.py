"""Failover: one of two workers SIGKILLed, to the first output of a partition it held.

Two workers share `keys` live sequences, written to the changelog as the restore benchmark writes
them (each worker restores its half as it starts). Their consumers use a 6 s session timeout with
heartbeats every second (`KAFKA_CONSUMER_SESSION_TIMEOUT_MS`, README "Static membership"): with
static membership a dead worker's partitions move only when its session times out, so the
timeout is most of a failover and is stated with the figure. An open-loop trickle of input runs
throughout over keys that were restored, and once both workers serve and score, the one holding
the most partitions is SIGKILLed.

The figure: from the kill to the first output of one of its partitions produced after the kill,
by its Kafka timestamp (the producer's clock: the dead worker's outputs all carry earlier ones),
and to a downstream reader having it. The survivor's log says where the time went: the rebalance
(its `assign`), the restore of the moved partitions (its `restored`), the first batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Consumer

from bench import broker, workload
from bench.broker import unique
from bench.latency import downstream_reader
from bench.processes import Worker
from bench.restore_bench import state_record
from bench.service import Cluster, Guarantee, Pipeline, pipeline, worker
from producer_sim.cluster.child import Child
from producer_sim.cluster.env import child_env
from producer_sim.cluster.processes import wait_for

PARTITIONS = 4
SESSION_TIMEOUT_MS = 6000  # the brokers' smallest allowed (group.min.session.timeout.ms)
FAILOVER_ENV = {
    "KAFKA_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
    "KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
}
LOAD_RATE = 2_000.0  # records/s: enough that every partition has input every millisecond or so
LOAD_KEYS = 10_000  # of the restored keys
_WAIT_S = 180.0


@dataclass(frozen=True)
class FailoverResult:
    guarantee: Guarantee
    keys: int  # live sequences between the two workers
    session_timeout_ms: int
    moved_partitions: tuple[int, ...]
    to_rebalance_s: float  # kill to the survivor's assignment of the moved partitions
    restore_s: float  # the survivor's restore of them (its `restored`)
    restored_records: int
    to_first_output_s: float  # kill to the first output of a moved partition (its timestamp)
    to_first_read_s: float  # kill to a downstream reader having it


def run(
    cluster: Cluster,
    keys: int,
    guarantee: Guarantee = "at-least-once",
    progress: Callable[[str], None] = print,
) -> FailoverResult:
    topic = cluster.topics.create("failover-input", PARTITIONS)
    p = pipeline(cluster, topic, guarantee, PARTITIONS)
    value = state_record(str(cluster.model))
    progress(f"failover: writing {keys:,} state records to the changelog")
    records = ((workload.key_name(i).encode(), value) for i in range(keys))
    broker.fill(cluster.bootstrap, p.changelog, records)
    workers = [_worker(cluster, p, f"f{i}") for i in range(2)]
    load: Child | None = None
    reader = downstream_reader(cluster.bootstrap, p.output, PARTITIONS)
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(_WAIT_S)
        load = _load(cluster, topic).start()
        held = _settled(workers, reader)
        victim, survivor = sorted(workers, key=lambda w: len(held[id(w)]), reverse=True)
        moved = held[id(victim)]
        assigns_before = len(survivor.events("assign"))
        restores_before = len(survivor.events("restored"))
        progress(f"failover: SIGKILL of the worker holding partitions {list(moved)}")
        killed_at = time.time()
        victim.kill()
        first_ms, read_at = _first_output(reader, moved, killed_at, survivor)
        assign = _event_after(survivor, "assign", assigns_before, moved)
        restored = _event_after(survivor, "restored", restores_before, moved)
    finally:
        if load is not None:
            load.stop()
        reader.close()
        for w in workers:
            w.stop()
    result = FailoverResult(
        guarantee=guarantee,
        keys=keys,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        moved_partitions=moved,
        to_rebalance_s=_epoch(assign["ts"]) - killed_at,
        restore_s=float(restored["seconds"]),
        restored_records=int(restored["records"]),
        to_first_output_s=first_ms / 1000 - killed_at,
        to_first_read_s=read_at - killed_at,
    )
    progress(
        f"failover ({guarantee}): first output of a moved partition "
        f"{result.to_first_output_s:.2f} s after the kill (read at {result.to_first_read_s:.2f} s;"
        f" rebalance at {result.to_rebalance_s:.2f} s, restore of "
        f"{result.restored_records:,} records {result.restore_s:.2f} s)"
    )
    return result


def _worker(cluster: Cluster, p: Pipeline, instance: str) -> Worker:
    w = worker(cluster, p, instance)
    w.env = child_env(FAILOVER_ENV)
    return w


def _load(cluster: Cluster, topic: str) -> Child:
    argv = ["-m", "bench.load", "--bootstrap-servers", cluster.bootstrap, "--topic", topic]
    argv += ["--rate", str(LOAD_RATE), "--seconds", "600", "--keys", str(LOAD_KEYS)]
    return Child(argv, cluster.workdir / f"{unique('failover-load')}.log")


def _settled(workers: list[Worker], reader: Consumer) -> dict[int, tuple[int, ...]]:
    """Each worker's partitions, once every partition has been scored (so both serve)."""
    scored: set[int] = set()
    deadline = time.monotonic() + _WAIT_S
    while len(scored) < PARTITIONS:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only partitions {sorted(scored)} were scored")
        for msg in reader.consume(1000, timeout=0.1):
            if msg.error() is None:
                scored.add(int(orjson.loads(msg.value() or b"{}")["partition"]))
        for w in workers:
            w.check_alive()
    held = {id(w): tuple(w.events("assign")[-1]["partitions"]) for w in workers}
    if sorted(p for parts in held.values() for p in parts) != list(range(PARTITIONS)):
        raise RuntimeError(f"the workers do not hold every partition once: {held}")
    return held


def _first_output(
    reader: Consumer, moved: tuple[int, ...], killed_at: float, survivor: Worker
) -> tuple[int, float]:
    """The timestamp (ms) of the first output of a moved partition produced after the kill, and
    when the reader had it."""
    killed_ms = killed_at * 1000
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        for msg in reader.consume(1000, timeout=0.05):
            stamp = msg.timestamp()[1]
            if msg.error() is not None or stamp < killed_ms:
                continue
            if int(orjson.loads(msg.value() or b"{}")["partition"]) in moved:
                return stamp, time.time()
        survivor.check_alive()
    raise TimeoutError(f"no output of partitions {list(moved)} within {_WAIT_S:g} s of the kill")


def _event_after(w: Worker, name: str, seen: int, moved: tuple[int, ...]) -> dict[str, Any]:
    """The survivor's first `name` event after `seen` that covers a moved partition (a restore
    is logged once all of it ends, which may be after a first partition's first output)."""

    def probe() -> dict[str, Any] | None:
        w.check_alive()
        covering = [e for e in w.events(name)[seen:] if set(moved) & set(e["partitions"])]
        return covering[0] if covering else None

    return wait_for(probe, _WAIT_S, f"the surviving worker's {name} of partitions {list(moved)}")


def _epoch(ts: object) -> float:
    """A log line's ISO time (UTC, milliseconds) as epoch seconds."""
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
