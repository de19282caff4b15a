"""Producing a scenario's input at a steady rate in the background, remembering where every record
landed (partition, offset) so outputs and dead letters can be matched to their input.

The producer is idempotent: across a broker restart its retries neither duplicate nor reorder
records, so the topic holds exactly the records given, in order per key.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from tests.reliability.accounting import Sent

Raw = tuple[bytes | None, bytes | None]  # key, value
_SLICES_PER_SECOND = 20


class Feeder(threading.Thread):
    def __init__(
        self, bootstrap: str, topic: str, records: Sequence[Raw], rate: float = 0.0
    ) -> None:
        super().__init__(name="feeder", daemon=True)
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
                # not found in cache" and sent nothing to that partition again until the next
                # full metadata refresh (5 minutes by default), longer than a scenario waits.
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
            assert partition is not None and offset is not None
            self.where[i] = (partition, offset)

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
        out: list[Sent] = []
        for (key, value), where in zip(self.records, self.where, strict=True):
            assert where is not None
            out.append(Sent(key, value, *where))
        return out
