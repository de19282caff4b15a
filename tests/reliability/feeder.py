"""Producing a scenario's input at a steady rate in the background, remembering where every record
landed (partition, offset) so outputs and dead letters can be matched to their input.

The producer is idempotent: across a broker restart its retries neither duplicate nor reorder
records, so the topic holds exactly the records given, in order per key. A retry the broker had
already written is reported delivered with no offset (librdkafka: persisted, offset unknown);
those offsets are read back from the topic, where each partition holds the records sent to it in
the order sent.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Mapping, Sequence

from confluent_kafka import KafkaError, Message, Producer

from tests.reliability.accounting import Sent, as_sent
from tests.reliability.stage import for_each_record

Raw = tuple[bytes | None, bytes | None]  # key, value
# A record as a partition holds it: key, value, offset.
Held = tuple[bytes | None, bytes | None, int]
_SLICES_PER_SECOND = 20
_UNKNOWN = -1  # delivered, offset not reported


class Feeder(threading.Thread):
    def __init__(
        self, bootstrap: str, topic: str, records: Sequence[Raw], rate: float = 0.0
    ) -> None:
        super().__init__(name="feeder", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.records = records
        self.rate = rate  # records per second; 0: as fast as possible
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
                # A leader killed while metadata still named it: the client logged "new leader
                # not found in cache" and the feeder stopped advancing; a full metadata refresh
                # (every 5 minutes by default, longer than a scenario waits) finds the new one.
                "topic.metadata.refresh.interval.ms": 5_000,
            }
        )
        self.where: list[tuple[int, int] | None] = [None] * len(records)
        self.errors: list[str] = []
        self.sent = 0  # records handed to the producer so far
        self.failure: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self._send_all()
            left = self.producer.flush(300)
            if left:
                self.errors.append(f"{left} record(s) undelivered after 300 s")
        except BaseException as exc:  # reported by result()
            self.failure = exc
        finally:
            self.finished.set()

    def _send_all(self) -> None:
        step = max(1, int(self.rate / _SLICES_PER_SECOND)) if self.rate else 1000
        started = time.monotonic()
        for first in range(0, len(self.records), step):
            for i in range(first, min(first + step, len(self.records))):
                key, value = self.records[i]
                self._produce(i, key, value)
            self.sent = min(first + step, len(self.records))
            self.producer.poll(0)
            if self.rate:
                # Pacing a load generator by the clock; nothing waits on it for correctness.
                ahead = started + self.sent / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def _produce(self, i: int, key: bytes | None, value: bytes | None) -> None:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self.errors.append(str(err))
                return
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None
            self.where[i] = (partition, _UNKNOWN if offset is None else offset)

        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=delivered)
                return
            except BufferError:
                self.producer.poll(0.05)

    def has_sent(self, count: int) -> bool | None:
        """True once `count` records are handed to the producer, None before; raises whatever
        ended the feeder early, so that a wait on it fails with the cause, not a timeout."""
        if self.sent >= count:
            return True
        if self.finished.is_set() and self.failure is not None:
            raise self.failure
        return None

    def describe(self) -> str:
        """How far it got and, while it runs, where its thread is: for a wait that timed out."""
        frame = sys._current_frames().get(self.ident or -1)
        where = "".join(traceback.format_stack(frame)[-4:]) if frame is not None else "ended"
        return f"{self.sent} of {len(self.records)} records handed over; the feeder: {where}"

    def result(self, timeout_s: float = 600.0) -> list[Sent]:
        """Wait for every delivery; the records as they lie in the topic."""
        if not self.finished.wait(timeout_s):
            raise TimeoutError(f"the feeder did not finish in {timeout_s} s")
        if self.failure is not None:
            raise self.failure
        assert not self.errors, f"input not delivered: {self.errors[:5]}"
        where: list[tuple[int, int]] = []
        for w in self.where:
            assert w is not None
            where.append(w)
        unknown = {p for p, offset in where if offset == _UNKNOWN}
        if unknown:
            where = placed(self.records, where, self._read_back(unknown))
        return [Sent(k, v, p, o) for (k, v), (p, o) in zip(self.records, where, strict=True)]

    def _read_back(self, partitions: set[int]) -> dict[int, list[Held]]:
        """Every record of these partitions, from the beginning to the current end."""
        held: dict[int, list[Held]] = {p: [] for p in partitions}

        def keep(msg: Message) -> None:
            sent = as_sent(msg)
            if sent.partition in held:
                held[sent.partition].append((sent.key, sent.value, sent.offset))

        for_each_record(self.bootstrap, self.topic, max(partitions) + 1, "read_committed", keep)
        return held


def placed(
    records: Sequence[Raw], where: Sequence[tuple[int, int]], held: Mapping[int, Sequence[Held]]
) -> list[tuple[int, int]]:
    """`where` with the unknown offsets of the partitions in `held` filled in from what those
    partitions hold: the records sent to each, once each and in the order sent (an idempotent
    producer, the topic's only one). Raises if a partition holds anything else."""
    sent_to: dict[int, list[int]] = defaultdict(list)
    for i, (p, _) in enumerate(where):
        if p in held:
            sent_to[p].append(i)
    out = list(where)
    for p, indices in sent_to.items():
        if len(held[p]) != len(indices):
            raise AssertionError(
                f"partition {p} holds {len(held[p])} records, {len(indices)} were sent to it"
            )
        for i, (key, value, offset) in zip(indices, held[p], strict=True):
            if (key, value) != tuple(records[i]) or where[i][1] not in (_UNKNOWN, offset):
                raise AssertionError(
                    f"partition {p} offset {offset} holds {key!r}: {value!r}, not record {i} "
                    f"({records[i]!r}, reported at {where[i]})"
                )
            out[i] = (p, offset)
    return out
