"""Rebuilding the state of input partitions from their changelog partitions.

Changelog partition p holds the keys of input partition p. Restoring reads it from the beginning
up to its end as of the start of the restore (the high watermark, or the last stable offset for a
read_committed reader); the newest record of a key wins, a tombstone forgets it, a record written
under another model version is discarded and counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer import changelog_codec as codec
from consumer.state import StateTable

_BATCH = 10_000
_RETRY_S = 0.2
_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


class RestoreError(RuntimeError):
    """The changelog could not be read to its end in time."""


@dataclass(frozen=True, slots=True)
class RestoreStats:
    partitions: tuple[int, ...]
    records: int
    outcomes: Counter[str]  # restored, ended, tombstone, version_mismatch, corrupt
    seconds: float

    @property
    def discarded(self) -> int:
        return self.outcomes["version_mismatch"]


def restore_partitions(
    reader: Consumer,
    topic: str,
    partitions: Iterable[int],
    *,
    table: StateTable,
    model_version: str,
    timeout_s: float = 300.0,
    progress: Callable[[], None] = lambda: None,
) -> RestoreStats:
    """Restore; `progress` is called after every fetched batch (a restore is liveness too)."""
    started = time.monotonic()
    wanted = tuple(sorted(partitions))
    ends: dict[int, int] = {}
    begins: dict[int, int] = {}
    for p in wanted:
        low, high = _watermarks(reader, TopicPartition(topic, p), started + timeout_s)
        if high > low:
            begins[p], ends[p] = low, high
    outcomes: Counter[str] = Counter()
    records = 0
    if ends:
        reader.assign([TopicPartition(topic, p, begins[p]) for p in ends])
        try:
            records = _read_to_end(
                reader,
                ends,
                table=table,
                model_version=model_version,
                outcomes=outcomes,
                deadline=started + timeout_s,
                progress=progress,
            )
        finally:
            reader.unassign()
    return RestoreStats(wanted, records, outcomes, time.monotonic() - started)


def _watermarks(reader: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """A partition's low and high watermarks. Transient errors are asked again until the
    restore's deadline: a changelog topic created a moment ago, or a broker coming back, answers
    "not leader" for a while."""
    while True:
        try:
            low, high = reader.get_watermark_offsets(tp, timeout=30, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            err = exc.args[0]
            if not (err.retriable() or err.code() in _TRANSIENT) or time.monotonic() > deadline:
                raise
        time.sleep(_RETRY_S)


def _read_to_end(
    reader: Consumer,
    ends: dict[int, int],
    *,
    table: StateTable,
    model_version: str,
    outcomes: Counter[str],
    deadline: float,
    progress: Callable[[], None],
) -> int:
    remaining = set(ends)
    records = 0
    while remaining:
        if time.monotonic() > deadline:
            raise RestoreError(f"changelog partitions {sorted(remaining)} not restored in time")
        progress()
        for msg in reader.consume(_BATCH, timeout=0.5):
            p, offset = msg.partition(), msg.offset()
            assert p is not None and offset is not None
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(p)
                    continue
                raise KafkaException(err)
            if offset >= ends[p]:
                remaining.discard(p)
                continue
            records += 1
            raw_key = msg.key()
            if not raw_key:
                outcomes["corrupt"] += 1
            else:
                key = raw_key.decode("utf-8", "replace")
                value = msg.value()
                if value is None:
                    codec.forget(table, key)
                    outcomes["tombstone"] += 1
                else:
                    outcomes[codec.restore(table, key, p, value, model_version)] += 1
            if offset >= ends[p] - 1:
                remaining.discard(p)
    return records
