"""Producing without ever dropping a record, and knowing whether everything was delivered.

A full producer queue is backpressure: serve delivery reports and try again, never drop.
Only failed deliveries are reported (`delivery.report.only.error`), so the good path costs no
Python callback per record; any failure is remembered until the next `flush` raises it, which
stops the commit that would otherwise have claimed those records were written. Records purged by
an aborted transaction are not failures: the abort already undid them (and rewound the worker).
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

Headers = Sequence[tuple[str, bytes]]
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_BACKPRESSURE_POLL_S = 0.05


class DeliveryFailedError(RuntimeError):
    """Some records were not delivered; the commit must not go ahead."""


class Sink:
    def __init__(self) -> None:
        self.producer: Producer | None = None
        self._failures: list[str] = []
        self.backpressure_waits = 0
        self.purged = 0  # records of aborted transactions, reported after the abort

    def attach(self, producer: Producer) -> None:
        self.producer = producer
        self._failures.clear()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        if err.code() in _PURGED:
            self.purged += 1
        else:
            self._failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int = -1,
        headers: Headers | None = None,
    ) -> None:
        producer = self._producer()
        while True:
            try:
                if headers is None:
                    producer.produce(topic, value, key, partition)
                else:
                    listed: list[tuple[str, str | bytes | None]] = list(headers)
                    producer.produce(topic, value, key, partition, headers=listed)
                return
            except BufferError:
                self.backpressure_waits += 1
                producer.poll(_BACKPRESSURE_POLL_S)

    def send_all(self, topic: str, values: Sequence[bytes], keys: Sequence[str]) -> None:
        """`send` for many records without headers, keys as text: the outputs of a batch."""
        produce = self._producer().produce
        for value, key in zip(values, keys, strict=True):
            try:
                produce(topic, value, key.encode())
            except BufferError:
                self.send(topic, value, key.encode())  # waits for room, then sends
                produce = self._producer().produce

    def serve(self) -> None:
        """Serve delivery reports without waiting."""
        self._producer().poll(0)

    def queued(self) -> int:
        return len(self._producer())

    def flush(self, timeout_s: float) -> None:
        """Wait until every record is delivered; raise if any was not."""
        left = self._producer().flush(timeout_s)
        if left:
            raise DeliveryFailedError(f"{left} record(s) still undelivered after {timeout_s:g} s")
        self.raise_failures()

    def raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            shown = "; ".join(failures[:5])
            raise DeliveryFailedError(f"{len(failures)} record(s) not delivered: {shown}")

    def _producer(self) -> Producer:
        if self.producer is None:
            raise RuntimeError("no producer attached")
        return self.producer
