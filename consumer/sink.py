"""Producing without ever dropping a record, and knowing whether everything was delivered.

A full producer queue is backpressure: serve delivery reports and try again, never drop.
Exactly-once, only failed deliveries are reported (`delivery.report.only.error`): the transaction's
commit is the barrier that says everything before it was delivered, so the good path costs no
Python callback per record. At-least-once, every record belongs to a delivery epoch that counts
its acknowledgements (`Epoch`): a checkpoint seals the epoch of the outputs it covers and goes on
once that epoch is delivered, without stopping the loop for a flush. Any failure is remembered
until the next `flush` (or the checkpoint waiting for its epoch) raises it, which stops the
commit that would otherwise have claimed those records were written. Records purged by an
aborted transaction are not failures: the abort already undid them (and rewound the worker).
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

Headers = Sequence[tuple[str, bytes]]
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_BACKPRESSURE_POLL_S = 0.05


class DeliveryFailedError(RuntimeError):
    """Some records were not delivered; the commit must not go ahead."""


class Epoch:
    """The records handed to the producer between two seals, and how many were acknowledged."""

    __slots__ = ("_sink", "acked", "failed", "sent")

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.sent = 0
        self.acked = 0
        self.failed = 0

    def ack(self, err: KafkaError | None, msg: Message) -> None:
        """The delivery report of one of its records (served by the producer's poll)."""
        self.acked += 1
        if err is not None:
            self.failed += self._sink.failure(err, msg)

    @property
    def delivered(self) -> bool:
        """Every record acknowledged (successfully or not: see `failed`)."""
        return self.acked >= self.sent


class Sink:
    def __init__(self, *, epochs: bool = False) -> None:
        """`epochs`: count every record's acknowledgement (the producer must report successful
        deliveries too: `kafka_clients.producer_config(..., every_delivery=True)`)."""
        self.producer: Producer | None = None
        self._failures: list[str] = []
        self.backpressure_waits = 0
        self.purged = 0  # records of aborted transactions, reported after the abort
        self.epoch: Epoch | None = Epoch(self) if epochs else None

    def attach(self, producer: Producer) -> None:
        self.producer = producer
        self._failures.clear()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        """The producer's delivery report callback (records sent outside any epoch)."""
        self.failure(err, msg)

    def failure(self, err: KafkaError | None, msg: Message) -> int:
        """1 if the report is of a failure (remembered for the next flush), else 0."""
        if err is None:
            return 0
        if err.code() in _PURGED:
            self.purged += 1
            return 0
        self._failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")
        return 1

    def seal(self) -> Epoch:
        """The current epoch, closed: later records go into a new one."""
        sealed = self.epoch
        if sealed is None:
            raise RuntimeError("a sink without epochs has none to seal")
        self.epoch = Epoch(self)
        return sealed

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int = -1,
        headers: Headers | None = None,
    ) -> None:
        producer = self._producer()
        epoch = self.epoch
        while True:
            try:
                if epoch is not None:
                    listed: list[tuple[str, str | bytes | None]] | None = (
                        None if headers is None else list(headers)
                    )
                    producer.produce(
                        topic, value, key, partition, on_delivery=epoch.ack, headers=listed
                    )
                    epoch.sent += 1
                elif headers is None:
                    producer.produce(topic, value, key, partition)
                else:
                    producer.produce(topic, value, key, partition, headers=list(headers))
                return
            except BufferError:
                self.backpressure_waits += 1
                producer.poll(_BACKPRESSURE_POLL_S)

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
