"""Sending the simulated stream to Kafka at the target rate; the only simulator module that
knows the producer.

Each loop: take whatever tokens the bucket has (at most `batch`), generate that many records,
hand them to the producer, serve delivery reports. A full producer queue (BufferError) is waited
out by polling, and the record retried: nothing is dropped. Delivery reports are asked for
failures only, so delivered records cost no Python call. At the end the producer is flushed in
short steps, so a signal handler can still run while it drains.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import KafkaError, Message, Producer

from producer_sim.labels import LabelWriter
from producer_sim.simulator.progress import Progress, Snapshot
from producer_sim.simulator.rate import TokenBucket
from producer_sim.simulator.settings import SimSettings
from producer_sim.simulator.workload import Workload

_BURST_S = 0.1  # the bucket saves up at most this many seconds of records
_IDLE_POLL_S = 0.05
_FLUSH_STEP_S = 0.5


class ProducerLike(Protocol):
    def produce(self, topic: str, value: Any, key: Any, headers: Any = ...) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Totals:
    records: int
    samples: int
    faults: int
    duplicates: int
    sequences_finished: int
    sequences_open: int  # cut short by the end of the run
    labels_written: int
    delivery_errors: int
    undelivered: int  # still queued when the flush timed out
    buffer_waits: int  # times the producer queue was full
    elapsed_s: float
    first_error: str | None

    @property
    def rate(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def all_delivered(self) -> bool:
        return self.delivery_errors == 0 and self.undelivered == 0

    def describe(self) -> str:
        lines = [
            f"sent {self.records:,} records ({self.samples:,} samples, {self.faults:,} malformed,"
            f" {self.duplicates:,} duplicated) in {self.elapsed_s:.1f} s: "
            f"{self.rate:,.0f} records/s",
            f"sequences: {self.sequences_finished:,} complete, {self.sequences_open:,} cut short; "
            f"{self.labels_written:,} labels written",
            f"delivery errors: {self.delivery_errors:,}, undelivered: {self.undelivered:,}, "
            f"queue-full waits: {self.buffer_waits:,}",
        ]
        if self.first_error:
            lines.append(f"first delivery error: {self.first_error}")
        return "\n".join(lines)


def kafka_producer(config: dict[str, Any]) -> ProducerLike:
    # The stubs type `headers` more narrowly than the list the workload shares between records.
    return cast(ProducerLike, Producer(config))


class Sender:
    def __init__(
        self,
        settings: SimSettings,
        progress: Progress,
        make_producer: Callable[[dict[str, Any]], ProducerLike] = kafka_producer,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.workload = Workload(settings.workload)
        self._progress = progress
        self._clock = clock
        self._wall = wall_clock
        config: dict[str, Any] = dict(settings.producer_config())
        config["on_delivery"] = self._on_delivery
        self._producer = make_producer(config)
        self._errors = 0
        self._first_error: str | None = None
        self._buffer_waits = 0
        self._started = clock()

    def _on_delivery(self, error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            self._errors += 1
            if self._first_error is None:
                self._first_error = str(error)

    def snapshot(self) -> Snapshot:
        """Counts so far; safe to call from another thread (it reads plain integers)."""
        c = self.workload.counts
        return Snapshot(
            elapsed_s=self._clock() - self._started,
            records=c.records,
            samples=c.samples,
            faults=c.faults,
            delivery_errors=self._errors,
            queued=len(self._producer),
        )

    def run(self, stop: threading.Event) -> Totals:
        """Sends until the count or duration is reached or `stop` is set; then flushes."""
        s = self.settings
        labels = LabelWriter(s.labels_out)
        try:
            self._started = self._clock()
            self._send(stop, labels)
            open_sequences = self.workload.open_sequences()
            labels.write(open_sequences)
        finally:
            labels.close()
        undelivered = self._flush()
        self._progress.close()
        c = self.workload.counts
        return Totals(
            records=c.records,
            samples=c.samples,
            faults=c.faults,
            duplicates=c.duplicates,
            sequences_finished=c.sequences_finished,
            sequences_open=len(open_sequences),
            labels_written=labels.written,
            delivery_errors=self._errors,
            undelivered=undelivered,
            buffer_waits=self._buffer_waits,
            elapsed_s=self._clock() - self._started,
            first_error=self._first_error,
        )

    def _send(self, stop: threading.Event, labels: LabelWriter) -> None:
        s = self.settings
        clock, wall = self._clock, self._wall
        producer, topic = self._producer, s.input_topic
        produce, poll = producer.produce, producer.poll
        bucket = TokenBucket(s.rate, max(1.0, s.rate * _BURST_S), self._started)
        counts = self.workload.counts
        while not stop.is_set():
            now = clock()
            elapsed = now - self._started
            if s.duration_s and elapsed >= s.duration_s:
                break
            want = s.batch if not s.count else min(s.batch, s.count - counts.records)
            if want <= 0:
                break
            n = bucket.take(want, now)
            if n == 0:
                poll(min(_IDLE_POLL_S, max(0.001, bucket.seconds_until_next(now))))
                continue
            batch = self.workload.take(n, int(wall() * 1000))
            for key, value, headers in batch.records:
                while True:
                    try:
                        produce(topic, value, key, headers=headers)
                        break
                    except BufferError:
                        self._buffer_waits += 1
                        poll(_IDLE_POLL_S)
            poll(0)
            labels.write(batch.finished)
            if self._progress.due(elapsed):
                self._progress.show(self.snapshot())

    def _flush(self) -> int:
        """Waits for deliveries up to the flush timeout; returns the records still queued."""
        deadline = self._clock() + self.settings.flush_timeout_s
        remaining = len(self._producer)
        while remaining:
            left = deadline - self._clock()
            if left <= 0:
                break
            remaining = self._producer.flush(min(_FLUSH_STEP_S, left))
        return remaining
