"""Kafka's own ceiling for the service: consume, then produce the same number of records.

    python -m bench.passthrough <the service's run flags>

No decoding and no model: every consumed record is produced again, unchanged, to the output
topic. Everything else is the service's: the same settings object from the same flags, the same
client configuration (`consumer.kafka_clients`), the same producer wrapper (`consumer.sink`), the
same micro-batches (`--max-batch`, `--max-wait-ms`) and the same commits every
`--commit-interval-ms`: flush then commit offsets (at-least-once), or offsets sent into the
transaction and the transaction committed (exactly-once). The service's work beyond this is the
price of scoring; the ratio of the two rates is what the benchmarks report.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer.config import ConfigError, Settings, build_settings
from consumer.kafka_clients import new_consumer, new_producer
from consumer.sink import Sink

# The settings object wants a model file; the passthrough never opens it.
_NO_MODEL = "passthrough-has-no-model"


class Passthrough:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.transactional = settings.guarantee == "exactly-once"
        self.consumer: Consumer = new_consumer(settings, self._on_error)
        self.sink = Sink()
        self.sink.attach(new_producer(settings, self._on_error, self.sink.on_delivery))
        if self.transactional:
            self._producer().init_transactions(60)
        self.positions: dict[int, int] = {}
        self.in_transaction = False
        self.stopping = False
        self.records = 0

    def run(self) -> None:
        s = self.settings
        self.consumer.subscribe([s.input_topic], on_revoke=self._on_revoke)
        next_commit = time.monotonic()
        try:
            while not self.stopping:
                msgs = self.consumer.consume(s.max_batch, timeout=s.max_wait_ms / 1000)
                if msgs:
                    self._forward(msgs)
                self.sink.serve()
                if time.monotonic() >= next_commit:
                    self.commit()
                    next_commit = time.monotonic() + s.commit_interval_ms / 1000
            self.commit()
        finally:
            self.consumer.close()
            self._producer().flush(10)

    def _forward(self, msgs: list[Message]) -> None:
        if self.transactional and not self.in_transaction:
            self._producer().begin_transaction()
            self.in_transaction = True
        topic = self.settings.output_topic
        for msg in msgs:
            err = msg.error()
            if err is not None:
                self._on_error(err)
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            self.sink.send(topic, msg.value(), msg.key())
            self.positions[partition] = offset + 1
            self.records += 1

    def commit(self) -> None:
        topic = self.settings.input_topic
        offsets = [TopicPartition(topic, p, o) for p, o in sorted(self.positions.items())]
        if self.transactional:
            if not self.in_transaction:
                return
            producer = self._producer()
            if offsets:
                metadata = self.consumer.consumer_group_metadata()
                producer.send_offsets_to_transaction(offsets, metadata, 60)
            producer.commit_transaction(60)
            self.in_transaction = False
            self.sink.raise_failures()
        else:
            self.sink.flush(60)
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=False)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit()
        for tp in partitions:
            self.positions.pop(tp.partition, None)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise KafkaException(err)
        print(f"passthrough: kafka error: {err}", file=sys.stderr)

    def _producer(self) -> Producer:
        assert self.sink.producer is not None
        return self.sink.producer


def main(argv: list[str]) -> int:
    try:
        settings = build_settings(["--model", _NO_MODEL, *argv], os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    passthrough = Passthrough(settings)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        passthrough.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("passthrough: running", flush=True)
    passthrough.run()
    print(f"passthrough: stopped after {passthrough.records} records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
