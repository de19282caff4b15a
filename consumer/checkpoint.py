"""Making outputs, state and input offsets durable together, in one fixed order.

At-least-once:
  1. flush outputs and dead letters, fail on any undelivered record;
  2. write the latest state of every key changed since the last checkpoint to the changelog
     (same partition number as the key's input partition), flush, fail on any undelivered;
  3. commit the input offsets (offset + 1).
Outputs are delivered before the state that claims them: a crash between 1 and 2 replays the
records against the older state and reproduces identical outputs; a crash between 2 and 3 replays
them against a state that already includes them, and the engine skips them (their offsets are not
newer), their outputs having been delivered in step 1.

Exactly-once: the same records and the input offsets go into the open transaction, which is
committed; a read_committed reader sees all of it or none of it.

A sequence that ended is first written as an "ended at offset X" record, and replaced by a
tombstone once the input offsets are committed past X, so a replay never resurrects it.

Changelog records are written only for partitions owned at the moment they are written: a state
or tombstone queued for a partition that was revoked or lost since would overwrite what its new
owner wrote.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable

from confluent_kafka import Consumer, TopicPartition

from consumer.codecs import changelog as changelog_codec
from consumer.engine.state_table import StateTable
from consumer.metrics import Metrics
from consumer.sink import Sink

Positions = dict[int, int]  # input partition -> next offset to read
_GRACE_S = 10.0  # beyond a transactional call's own timeout, before it counts as stuck


class StuckTransactionError(RuntimeError):
    """A transactional call did not return, even after its timeout; the transaction (and the
    producer) cannot be trusted any more."""


class Checkpointer:
    def __init__(
        self,
        *,
        sink: Sink,
        table: StateTable,
        input_topic: str,
        changelog_topic: str,
        model_version: str,
        transactional: bool,
        metrics: Metrics,
        timeout_s: float = 60.0,
    ) -> None:
        self.sink = sink
        self.table = table
        self.input_topic = input_topic
        self.changelog_topic = changelog_topic
        self.model_version = model_version
        self.transactional = transactional
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._tombstones: dict[str, int] = {}  # key -> changelog partition

    def commit(self, consumer: Consumer, positions: Positions, owned: Collection[int]) -> None:
        """One checkpoint of the input partitions `owned` now; raises (DeliveryFailedError,
        KafkaException) if it did not happen."""
        started = time.monotonic()
        offsets = [TopicPartition(self.input_topic, p, o) for p, o in sorted(positions.items())]
        if self.transactional:
            self._write_changelog(owned)
            # A failed delivery makes commit_transaction fail; one already reported is raised
            # here instead, so that a committed transaction is never followed by a failure.
            self.sink.raise_failures()
            producer = self.sink.producer
            assert producer is not None
            if offsets:
                metadata = consumer.consumer_group_metadata()
                self._bounded(
                    "send_offsets_to_transaction",
                    lambda: producer.send_offsets_to_transaction(offsets, metadata, self.timeout_s),
                )
            self._bounded("commit_transaction", lambda: producer.commit_transaction(self.timeout_s))
        else:
            self.sink.flush(self.timeout_s)
            self._write_changelog(owned)
            self.sink.flush(self.timeout_s)
            if offsets:
                consumer.commit(offsets=offsets, asynchronous=False)
        self._committed(positions)
        self.metrics.observe_commit(time.monotonic() - started)

    def _bounded(self, what: str, call: Callable[[], None]) -> None:
        """Run a transactional call, giving up on it shortly after its own timeout: librdkafka
        can wait forever for a group coordinator that a broker restart made it forget, ignoring
        the timeout (confluentinc/librdkafka#5456). A stuck producer has to be replaced."""
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                call()
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name=what, daemon=True).start()
        if not done.wait(self.timeout_s + _GRACE_S):
            raise StuckTransactionError(f"{what} did not return within {self.timeout_s:g} s")
        if failure:
            raise failure[0]

    def pending(self) -> bool:
        """Whether tombstones wait for the next checkpoint."""
        return bool(self._tombstones)

    def forget_pending(self) -> None:
        """After a rewind the changelog is read again; pending tombstones are re-derived."""
        self._tombstones.clear()

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Revoked or lost: their pending tombstones are the next owner's to write."""
        gone = set(partitions)
        self._tombstones = {k: p for k, p in self._tombstones.items() if p not in gone}

    def _write_changelog(self, owned: Collection[int]) -> None:
        table = self.table
        topic = self.changelog_topic
        written = 0
        for key in table.take_dirty():
            slot = table.slot_of(key)
            ended = table.ended.get(key)
            if slot is not None:
                value = changelog_codec.encode_state(table, key, self.model_version)
                partition = int(table.partition[slot])
            elif ended is not None:
                value = changelog_codec.encode_ended(ended, self.model_version)
                partition = ended.partition
            else:
                continue  # dropped with its partition: the new owner writes it
            if partition not in owned:
                continue
            self.sink.send(topic, value, key.encode(), partition)
            written += 1
        for key, partition in self._tombstones.items():
            if partition in owned and key not in table and key not in table.ended:
                self.sink.send(topic, None, key.encode(), partition)
                written += 1
        self._tombstones.clear()
        self.metrics.count_changelog(written)

    def _committed(self, positions: Positions) -> None:
        ended = self.table.ended
        for key, e in list(ended.items()):
            position = positions.get(e.partition)
            if position is not None and e.offset < position:
                del ended[key]
                self._tombstones[key] = e.partition
