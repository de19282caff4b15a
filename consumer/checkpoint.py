"""Making outputs, state and input offsets durable together, in one fixed order, and (exactly-once)
the transaction's whole lifecycle: begin, commit, abort, and replacing a producer that cannot go
on. The order and why it is safe: docs/design.md, "Commit order".

At-least-once:
  1. flush outputs and dead letters, fail on any undelivered record;
  2. write the latest state of every key changed since the last checkpoint to the changelog
     (`consumer.changelog_writer`), flush, fail on any undelivered;
  3. commit the input offsets (offset + 1).

The periodic at-least-once checkpoint runs the same order pipelined, one interval apart, so that
it does not hold the loop while state records are encoded, produced and flushed: it flushes
(the outputs so far, and the state records of the previous snapshot, sent meanwhile), asks for
the positions of the previous snapshot to be committed, then snapshots the changed keys and takes
the positions, whose commit waits for the next checkpoint. Between two checkpoints the snapshot's
records go to the producer a slice per loop. The committed offsets trail by one interval; a crash
replays it. The pipelined offset commit is asynchronous (the group coordinator's answer took over
50 ms now and then, with the loop waiting); the answer comes back through the consumer's poll
(`on_commit`). Only a confirmed commit releases the tombstones of sequences that ended before it
(written at the next checkpoint); positions not confirmed (a failure, or no answer) are asked
again at each checkpoint until they are.

Exactly-once: the same records and the input offsets go into the open transaction, which is
committed; a read_committed reader sees all of it or none of it.

A checkpoint that fails tells the caller whether to rewind: go back to the last commit (drop the
state, restore it, read the input again from the committed offsets).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from consumer.changelog_writer import ChangelogWriter, Positions
from consumer.logging_setup import log_event
from consumer.metrics import CommitStep, Metrics
from consumer.sink import DeliveryFailedError, Sink

__all__ = ["Checkpointer", "Outcome", "Positions", "StuckTransactionError"]

log = logging.getLogger("consumer.checkpoint")
_GRACE_S = 10.0  # beyond a transactional call's own timeout, before it counts as stuck

# committed; nothing to commit; failed, try again at the next one; failed, rewind first
Outcome = Literal["committed", "nothing", "failed", "rewind"]


class StuckTransactionError(RuntimeError):
    """A transactional call did not return, even after its timeout; the transaction (and the
    producer) cannot be trusted any more."""


class Checkpointer:
    def __init__(
        self,
        *,
        sink: Sink,
        changelog: ChangelogWriter,
        input_topic: str,
        transactional: bool,
        metrics: Metrics,
        new_producer: Callable[[], Producer],
        keep_trying: Callable[[], bool] = lambda: True,
        timeout_s: float = 60.0,
    ) -> None:
        """`new_producer`: a producer attached to `sink`'s delivery reports; `keep_trying`: false
        once the worker stops, so that it does not wait for a broker that is away."""
        self.sink = sink
        self.changelog = changelog
        self.input_topic = input_topic
        self.transactional = transactional
        self.metrics = metrics
        self.new_producer = new_producer
        self.keep_trying = keep_trying
        self.timeout_s = timeout_s
        self.in_transaction = False
        # At-least-once, pipelined: the positions of the last snapshot not confirmed committed
        # (asked at the next checkpoint, once its state records are delivered, and again at each
        # one after until the broker confirms them); the positions last asked; those confirmed.
        self.behind: Positions = {}
        self._asked: Positions = {}
        self._committed: Positions = {}

    # -- the producer and its transaction ---------------------------------------------------

    def start_producer(self) -> None:
        """Attach a new producer to the sink (exactly-once: with its transactions initialised,
        which fences a previous producer of the same transactional id)."""
        if self.sink.producer is not None:
            with contextlib.suppress(KafkaException):  # a fenced or failed producer may refuse
                self.sink.producer.flush(0)
        producer = self.new_producer()
        while self.transactional:
            try:
                producer.init_transactions(self.timeout_s)
                break
            except KafkaException as exc:
                # Retriable (the broker is unreachable): it is no use going on without it.
                if not exc.args[0].retriable() or not self.keep_trying():
                    raise
                log_event(log, "init_transactions_retry", level=logging.WARNING, reason=str(exc))
        self.sink.attach(producer)
        self.in_transaction = False

    def begin(self) -> None:
        """Exactly-once: open a transaction unless one is open."""
        if self.transactional and not self.in_transaction:
            self._producer().begin_transaction()
            self.in_transaction = True

    def abort(self) -> None:
        """Exactly-once: abort the transaction (also one whose begin failed: that leaves the
        producer needing an abort). A producer that cannot (after a broker restart it may never
        find its transaction coordinator again) is replaced: the new one's init_transactions
        fences it and aborts its transaction on the broker."""
        if not self.transactional:
            return
        try:
            self._producer().abort_transaction(self.timeout_s)
        except KafkaException as exc:
            log_event(log, "producer_replaced", level=logging.WARNING, reason=str(exc.args[0]))
            self.metrics.count_commit_failure("producer_fenced")
            self.start_producer()
        self.in_transaction = False

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(
        self,
        consumer: Consumer,
        positions: Positions,
        owned: Collection[int],
        *,
        pipelined: bool = False,
    ) -> Outcome:
        """One checkpoint of the input partitions `owned`, failures handled: now, or (at-least-
        once, `pipelined`) the positions of the last pipelined checkpoint, snapshotting these."""
        if self.transactional and not self.in_transaction:
            return "nothing"  # nothing consumed or produced since the last commit
        try:
            if pipelined and not self.transactional:
                self.commit_behind(consumer, positions, owned)
            else:
                self.commit(consumer, positions, owned)
        except DeliveryFailedError as exc:
            self.metrics.count_commit_failure("delivery")
            log_event(log, "commit_failed", level=logging.ERROR, reason=str(exc))
            self.abort()  # raised before the commit: the transaction is open
            return "rewind"
        except StuckTransactionError as exc:
            log_event(log, "producer_replaced", level=logging.ERROR, reason=str(exc))
            self.metrics.count_commit_failure("producer_fenced")
            self.start_producer()  # fences the stuck one, aborting its transaction
            return "rewind"
        except KafkaException as exc:
            return "rewind" if self.failed(exc.args[0]) else "failed"
        return "committed"

    def failed(self, err: KafkaError) -> bool:
        """A commit, or exactly-once a produce into the open transaction, failed with `err`.
        Whether the caller must rewind: at-least-once the offsets are simply committed again at
        the next checkpoint; exactly-once the transaction is gone."""
        log_event(log, "commit_failed", level=logging.ERROR, reason=str(err))
        if not self.transactional:
            self.metrics.count_commit_failure("offset_commit")
            return False
        if err.fatal():
            self.metrics.count_commit_failure("producer_fenced")
            self.start_producer()
        else:
            self.metrics.count_commit_failure("transaction_abort")
            self.abort()
        self.in_transaction = False
        return True

    def forget(self, partitions: Collection[int] | None = None) -> None:
        """Revoked, lost or rewound (None: every partition): not to be committed from here."""
        if partitions is None:
            self.behind, self._asked, self._committed = {}, {}, {}
            return
        for p in partitions:
            for positions in (self.behind, self._asked, self._committed):
                positions.pop(p, None)

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The broker's answer to an offset commit, as the consumer's poll serves it. Only a
        success counts: whatever else comes back (a failure, an answer about an older commit, or
        none at all), a position stays `behind` until confirmed, and is asked again at the next
        checkpoint. Answers for partitions forgotten since are ignored, and so are those beyond
        the offsets asked here: librdkafka serves a synchronous commit's answer this way too,
        and that commit is handled (and a failure counted) where it was made."""
        confirmed: Positions = {}
        failed: dict[int, KafkaError] = {}
        for tp in partitions:
            p, offset = tp.partition, tp.offset
            asked = self._asked.get(p)
            if tp.topic != self.input_topic or asked is None or offset > asked:
                continue
            failure = err if err is not None else tp.error
            if failure is not None:
                failed[p] = failure
            elif offset > self._committed.get(p, -1):  # an older commit's answer may come late
                confirmed[p] = offset
        if failed:
            self.metrics.count_commit_failure("offset_commit")
            reason = str(next(iter(failed.values())))
            log_event(log, "commit_failed", level=logging.ERROR, reason=reason,
                      partitions=sorted(failed))  # fmt: skip
        if confirmed:  # sequences that ended before them get tombstones at the next checkpoint
            self._committed.update(confirmed)
            self.changelog.committed(confirmed)
            for p, offset in confirmed.items():
                if self.behind.get(p, offset + 1) <= offset:
                    del self.behind[p]

    def unasked(self) -> bool:
        """At-least-once: whether the last snapshot has positions not asked to be committed yet."""
        return any(self._asked.get(p) != o for p, o in self.behind.items())

    def commit_behind(
        self, consumer: Consumer, positions: Positions, owned: Collection[int]
    ) -> None:
        """At-least-once, pipelined (see the module's docstring); raises as `commit`."""
        started = time.monotonic()
        with self._step("changelog"):
            self.changelog.send_unsent(owned)  # what is left of the last snapshot
        with self._step("flush"):
            self.sink.flush(self.timeout_s)
        self._ask_commit(consumer, self.behind, owned)
        # Sequences ended (or evicted) below the confirmed positions: tombstones with this snapshot.
        self.changelog.committed(self._committed)
        with self._step("changelog"):
            self.changelog.snapshot(owned)
        self.behind = {
            p: o for p, o in positions.items() if p in owned and self._committed.get(p) != o
        }
        self.metrics.observe_commit(time.monotonic() - started)

    def commit(self, consumer: Consumer, positions: Positions, owned: Collection[int]) -> None:
        """The checkpoint itself; raises (DeliveryFailedError, StuckTransactionError,
        KafkaException) if it did not happen."""
        started = time.monotonic()
        offsets = [TopicPartition(self.input_topic, p, o) for p, o in sorted(positions.items())]
        if self.transactional:
            with self._step("changelog"):
                self.changelog.write(owned)
            # A failed delivery makes commit_transaction fail; one already reported is raised
            # here instead, so that a committed transaction is never followed by a failure.
            self.sink.raise_failures()
            producer = self._producer()
            if offsets:
                metadata = consumer.consumer_group_metadata()
                with self._step("send_offsets"):
                    self._bounded(
                        "send_offsets_to_transaction",
                        lambda: producer.send_offsets_to_transaction(
                            offsets, metadata, self.timeout_s
                        ),
                    )
            with self._step("commit_transaction"):
                self._bounded(
                    "commit_transaction", lambda: producer.commit_transaction(self.timeout_s)
                )
            self.in_transaction = False
        else:
            with self._step("flush"):
                self.sink.flush(self.timeout_s)
            with self._step("changelog"):
                self.changelog.write(owned)
            with self._step("flush"):
                self.sink.flush(self.timeout_s)
            # It supersedes the commits asked asynchronously: their answers no longer count.
            self._asked = {}
            if offsets:
                with self._step("offsets"):
                    consumer.commit(offsets=offsets, asynchronous=False)
        self.changelog.committed(positions)
        self.behind, self._committed = {}, dict(positions)
        self.metrics.observe_commit(time.monotonic() - started)

    def _ask_commit(self, consumer: Consumer, positions: Positions, owned: Collection[int]) -> None:
        """Ask for `positions` (of partitions still owned, not confirmed yet) to be committed,
        without waiting for the answer."""
        offsets = [
            TopicPartition(self.input_topic, p, o)
            for p, o in sorted(positions.items())
            if p in owned and self._committed.get(p) != o
        ]
        if offsets:
            with self._step("offsets"):
                consumer.commit(offsets=offsets, asynchronous=True)
        self._asked.update((tp.partition, tp.offset) for tp in offsets)

    @contextlib.contextmanager
    def _step(self, step: CommitStep) -> Iterator[None]:
        """Time a step that holds the loop (`commit_blocked_seconds`)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.metrics.observe_commit_step(step, time.monotonic() - started)

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

    def _producer(self) -> Producer:
        producer = self.sink.producer
        assert producer is not None, "start_producer() first"
        return producer
