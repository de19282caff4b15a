"""The Kafka loop: consume, decode, score, produce, checkpoint. The one module that knows both
Kafka and the engine; each step it takes lives in a module named after it.

    consume a micro-batch -> decode (bad input -> dead-letter topic) -> engine -> outputs
    every commit interval: checkpoint (docs/design.md, "Commit order")
    on assign: pause the new partitions; restore their keys from the changelog a slice per loop
               iteration (the other partitions keep flowing), then resume them
    on revoke: checkpoint, then drop their keys; on lost: drop them, commit nothing
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import cast

import numpy as np
import numpy.typing as npt
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from consumer.broker_away import broker_away
from consumer.changelog_writer import ChangelogWriter
from consumer.checkpoint import Checkpointer, Positions
from consumer.codecs.input_batch import decode_batch
from consumer.codecs.inputs import InputRecord, Rejection, dlq_headers
from consumer.codecs.outputs import encode_outputs
from consumer.config import Settings
from consumer.departed_writers import FencingThread
from consumer.engine.results import BatchResult
from consumer.engine.versions import ModelVersions, Results
from consumer.http_endpoints import Health
from consumer.kafka_clients import KafkaClients
from consumer.logging_setup import log_event
from consumer.metrics import Metrics, RebalanceKind
from consumer.model.step import StepFunction
from consumer.model.store import ModelStore
from consumer.model_reload import ModelReloader
from consumer.restore import Restorer, RestoreStats
from consumer.shadow import ShadowScoring
from consumer.sink import Sink

log = logging.getLogger("consumer.runner")
_HOUSEKEEPING_S = 1.0
_SESSION_TIMEOUT_MS = 45_000  # librdkafka's default session.timeout.ms
# Restore work per loop iteration: short enough for the partitions already owned to keep flowing.
_RESTORE_SLICE_S = 0.2
_CORRUPT_LOGGED = 20  # corrupt changelog records logged one by one per restore; the rest counted
# A fenced static member rejoins with a new consumer at most this often before it gives up.
_MAX_REJOINS = 3
_REJOIN_WINDOW_S = 600.0
_COMMITTED_ASK_S = 10.0


class InstanceFencedError(RuntimeError):
    """Another consumer joined the group with this worker's group.instance.id."""


class Runner:
    def __init__(
        self,
        settings: Settings,
        step_fn: StepFunction,
        metrics: Metrics,
        health: Health,
        clients: KafkaClients | None = None,
        *,
        store: ModelStore | None = None,
        shadow: ShadowScoring | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients or KafkaClients(settings)
        self.step_fn = step_fn
        self.metrics = metrics
        self.health = health
        self.store = store or ModelStore(settings.model_path, settings.backend)
        self.models = ModelVersions(
            step_fn,
            max_steps=settings.max_steps,
            policy=settings.on_model_change,
            load_version=self._load_version,
        )
        self.shadow = shadow
        self.reloader = ModelReloader(self.store, metrics.rollout, poll_s=settings.model_poll_s)
        self.transactional = settings.guarantee == "exactly-once"
        self.sink = Sink()
        self.changelog = ChangelogWriter(
            sink=self.sink,
            tables=lambda: [(e.table, e.step_fn.version) for e in self.models.engines()],
            topic=settings.changelog_topic,
            metrics=metrics,
        )
        self.checkpointer = Checkpointer(
            sink=self.sink,
            changelog=self.changelog,
            input_topic=settings.input_topic,
            transactional=self.transactional,
            metrics=metrics,
            new_producer=lambda: self.clients.producer(self._on_kafka_error, self.sink.on_delivery),
            keep_trying=lambda: not self.stopping,
        )
        self.consumer = self.clients.group_consumer(
            self._on_consumer_error, self.checkpointer.on_commit
        )
        self.reader = self.clients.changelog_reader()
        # Exactly-once: a successor aborts the transaction a departed worker left open.
        self.departed = (
            FencingThread(self.clients.departed_writers()) if self.transactional else None
        )
        self.restorer = Restorer(self.reader, settings.changelog_topic, target=self.models)
        self.positions: Positions = {}
        # Where a partition paused for a restore reads on when resumed, if not where it stopped:
        # a resume may go back to the last position consumed, undoing a seek made while paused.
        self._resume_at: Positions = {}
        self.assigned: set[int] = set()
        self.stopping = False
        self.failed = False  # the loop ended on an exception: commit nothing any more
        self._uncommitted = False  # records read or outputs sent since the last checkpoint
        self._fenced: KafkaError | None = None  # the group consumer was fenced: replace it
        self._rejoins: list[float] = []  # when the group consumer was last replaced
        self._detached = False  # closing a fenced consumer: nothing of it may be committed
        strategy = settings.consumer_properties().get("partition.assignment.strategy", "")
        self._cooperative = strategy in ("", "cooperative-sticky")  # kafka_clients' default
        self.checkpointer.start_producer()

    def reload_model(self) -> None:
        """Look for a new model version at the next housekeeping (SIGHUP)."""
        self.reloader.request()

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit, leave the group and return."""
        self.stopping = True

    def _subscribe(self) -> None:
        self.consumer.subscribe(
            [self.settings.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def run(self) -> None:
        s = self.settings
        self._subscribe()
        commit_every = s.commit_interval_ms / 1000
        next_commit = next_housekeeping = time.monotonic()
        clean = False
        try:
            while not self.stopping:
                polled = time.perf_counter()
                # While restoring, the loop's wait is the restore's slice, not an empty poll.
                wait_s = 0.0 if self.restorer.pending else s.max_wait_ms / 1000
                msgs = self.consumer.consume(s.max_batch, timeout=wait_s)
                if msgs:  # an empty poll is waiting, not work
                    self.metrics.add_stage_time("consume", time.perf_counter() - polled)
                self.health.mark_polled()
                self.metrics.mark_polled()
                if self._fenced is not None:
                    self._rejoin(self._fenced)
                    continue
                if msgs:
                    self._transacting(self._process, msgs)
                if self.restorer.pending:
                    self._restore_slice()
                if self.changelog.unsent():
                    self._send_changelog_slice()
                # Exactly-once, a delivery report can carry the open transaction's fatal error
                # (a fenced producer): handled as a failed commit, not the worker's end.
                self._transacting(self.sink.serve)
                now = time.monotonic()
                if now >= next_housekeeping:
                    self._transacting(self._housekeeping)
                    next_housekeeping = now + _HOUSEKEEPING_S
                # The interval spaces out checkpoints that have something to commit. An idle
                # worker has nothing to space out: the first batch after idleness is committed
                # at once, not up to an interval after it was delivered.
                if now >= next_commit and self._to_commit():
                    # From the checkpoint's start: exactly-once, a record's outputs are readable
                    # at the commit after it, so the interval is the cadence readers see.
                    next_commit = time.monotonic() + commit_every
                    self._checkpoint(pipelined=True)
                elif not msgs and self.checkpointer.unasked():
                    # Idle: commit what the last checkpoint snapshotted now, not an interval on.
                    self._checkpoint(pipelined=True)
            self._checkpoint()
            clean = True
        finally:
            self._shut_down(clean)

    def _shut_down(self, clean: bool) -> None:
        """Close the clients. After a failure nothing may be committed on the way out: the state
        and positions may reflect part of the batch that failed, which must be read again."""
        # A static member (group.instance.id) does not leave the group when it closes: a restart
        # within the session timeout gets its partitions back with no rebalance, and otherwise
        # they move to other workers only when the session times out.
        session_ms = self.settings.consumer_properties().get("session.timeout.ms")
        moved_after_s = int(session_ms or _SESSION_TIMEOUT_MS) / 1000
        if clean:
            log_event(log, "shutdown", partitions=sorted(self.assigned),
                      instance_id=self.settings.instance_id,
                      partitions_move_after_s=moved_after_s)  # fmt: skip
        else:
            self.failed = True  # the revoke that close() runs must not checkpoint
            self.stopping = True  # and a producer replaced on the way out gets no retries
            log_event(log, "shutdown_without_commit", level=logging.ERROR,
                      partitions=sorted(self.assigned), instance_id=self.settings.instance_id,
                      partitions_move_after_s=moved_after_s)  # fmt: skip
            if self.checkpointer.in_transaction:
                with contextlib.suppress(KafkaException):
                    self.checkpointer.abort()
        with contextlib.suppress(KafkaException):  # a consumer in a fatal state may refuse
            self.consumer.close()  # revokes (and, after a clean stop, checkpoints) first
        self.reader.close()
        if self.departed is not None:
            self.departed.close()
        if self.sink.producer is not None:
            with contextlib.suppress(KafkaException):
                self.sink.producer.flush(10)

    def _transacting(self, work: Callable[..., None], *args: object) -> None:
        """Run work that produces. Exactly-once, a produce can fail because the open transaction
        failed underneath (say the broker lost the producer's sequence numbers in a restart):
        that is a failed commit, handled as one (abort, then back to the last commit)."""
        try:
            work(*args)
        except KafkaException as exc:
            if not self.transactional:
                raise
            if self.checkpointer.failed(exc.args[0]):
                self._rewind()

    def _process(self, msgs: list[Message]) -> None:
        s = self.settings
        self.checkpointer.begin()
        self._uncommitted = True
        started = time.perf_counter()
        consumed = len(msgs)
        msgs = self._readable(msgs)
        keys = [m.key() for m in msgs]
        values = [m.value() for m in msgs]
        # Records of a partition always have both (errors were taken out above).
        parts = cast("list[int]", [m.partition() for m in msgs])
        offsets = cast("list[int]", [m.offset() for m in msgs])
        now_ms = time.time() * 1000
        stamps = [m.timestamp() for m in msgs]
        # Record times (Kafka timestamps) judge idleness, not the time the worker reads them.
        times = np.fromiter(
            (ts if kind != TIMESTAMP_NOT_AVAILABLE else now_ms for kind, ts in stamps),
            np.float64,
            len(stamps),
        )
        times /= 1000
        batch = decode_batch(
            keys,
            values,
            parts,
            offsets,
            times,
            n_features=self.step_fn.n_features,
            max_value_bytes=s.max_value_bytes,
        )
        decoded = time.perf_counter()
        self.metrics.add_stage_time("decode", decoded - started)
        for position, rejection in batch.rejections:
            self._dead_letter(msgs[position], rejection)
        results = self.models.process_batch(batch)
        engine_seconds = time.perf_counter() - decoded
        samples = waves = 0
        step_seconds = slot_seconds = 0.0
        for _, result in results:
            samples += result.samples
            waves += result.waves
            step_seconds += result.step_seconds
            slot_seconds += result.slot_seconds
        self.metrics.add_stage_time("key_to_slot", slot_seconds)
        self.metrics.add_stage_time("model_step", step_seconds)
        self.metrics.add_stage_time("bookkeeping", engine_seconds - step_seconds - slot_seconds)
        for version, result in results:
            self._emit(result, version)
            if result.rejected:  # valid records the engine refused: a key on two partitions
                by_position = {(m.partition(), m.offset()): m for m in msgs}
                for r in result.rejected:
                    msg = by_position[r.record.partition, r.record.offset]
                    self._dead_letter(msg, r.rejection)
        if self.shadow is not None:
            self._shadow_score(*batch.in_order(), results)
        # Positions advance only once the batch's outputs are handed to the sink: a batch that
        # fails half-way must not be committed by a later checkpoint. Offsets grow within a
        # partition, so each partition's last record is its newest.
        self.positions.update(zip(parts, [o + 1 for o in offsets], strict=True))
        self.metrics.observe_batch(consumed, samples, waves, step_seconds)
        valid_times = np.concatenate([batch.samples.times, batch.record_times])
        if len(valid_times):
            self.metrics.observe_latencies(time.time() - valid_times)

    def _readable(self, msgs: list[Message]) -> list[Message]:
        """The batch without consumer errors (handled here) and without records of partitions
        still being restored (read again once restored)."""
        restoring = self.restorer.pending
        if not restoring and not any([m.error() is not None for m in msgs]):
            return msgs
        readable: list[Message] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                self._on_consumer_error(err)
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            if partition in restoring:
                # Paused, so not expected; read it again once the partition's keys are restored.
                at = self._resume_at.get(partition, offset)
                self._resume_at[partition] = min(at, offset) if at >= 0 else at
                continue
            readable.append(msg)
        return readable

    def _shadow_score(
        self, records: list[InputRecord], times: npt.NDArray[np.float64], live: Results
    ) -> None:
        assert self.shadow is not None
        shadow = self.shadow.process(records, times)
        self._emit_shadow(shadow)
        for version, agreed in self.shadow.compare(live, shadow).items():
            self.metrics.shadow.observe(version, self.shadow.version, agreed.compared,
                                        agreed.abs_difference, agreed.agreeing)  # fmt: skip

    def _emit_shadow(self, result: BatchResult) -> None:
        assert self.shadow is not None
        out = result.outputs
        if not len(out):
            return
        self.checkpointer.begin()
        self._uncommitted = True
        topic, version = self.shadow.topic, self.shadow.version
        for key, value in zip(out.keys, encode_outputs(out, version), strict=True):
            self.sink.send(topic, value, key.encode())
        self.metrics.shadow.count_outputs(version, len(out))

    def _dead_letter(self, msg: Message, rejection: Rejection) -> None:
        s = self.settings
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        headers = dlq_headers(
            rejection, source_topic=s.input_topic, source_partition=partition, source_offset=offset
        )
        self.sink.send(s.dlq_topic, msg.value(), msg.key(), headers=headers)
        self.metrics.count_dlq(rejection.reason)

    def _emit(self, result: BatchResult, version: str) -> None:
        out = result.outputs
        started = time.perf_counter()
        values = encode_outputs(out, version)
        encoded = time.perf_counter()
        self.sink.send_all(self.settings.output_topic, values, out.keys)
        self.metrics.add_stage_time("encode", encoded - started)
        self.metrics.add_stage_time("produce", time.perf_counter() - encoded)
        if len(out):
            self.metrics.observe_outputs(out.values)
            self.metrics.rollout.count_outputs(version, len(out))
        self.metrics.count_sequences_started(result.started)
        for reason, n in result.ended.items():
            self.metrics.count_sequences_ended(reason, n)
        if result.skipped:
            self.metrics.count_skipped(result.skipped)

    def _housekeeping(self) -> None:
        """Idle eviction and the gauges, about once a second."""
        lags = self._lag()
        idle = self.settings.idle_timeout_s
        # Not while a restore is under way: its keys' newest records may still be unread. Only
        # partitions read to their end evict: on one with lag, the keys' next samples may wait in
        # the backlog (after a downtime, say).
        if idle > 0 and not self.restorer.pending:
            caught_up = [p for (_, p), lag in lags.items() if lag == 0]
            results = self.models.evict_idle(idle, caught_up=caught_up, now=time.time())
            if evicted := self._emit_finals(results):
                log_event(log, "idle_evicted", sequences=evicted)
            if self.shadow is not None:
                now = time.time()
                self._emit_shadow(self.shadow.evict_idle(idle, caught_up=caught_up, now=now))
        if (candidate := self.reloader.candidate(self.models.current.step_fn)) is not None:
            self._switch_model(candidate)
        for version in self.models.retire_drained():
            log_event(log, "model_drained", model_version=version)
        now = time.monotonic()
        self.metrics.rollout.set_versions(
            self.models.sequences(),
            {
                self.models.version: 0.0,
                **{v: now - t for v, t in self.models.draining_since.items()},
            },
        )
        self.metrics.set_state_table(len(self.models), self.models.nbytes())
        self.metrics.set_producer_queue(self.sink.queued())
        self.metrics.set_lag(lags)

    def _emit_finals(self, results: list[tuple[str, BatchResult]]) -> int:
        """Final records made outside a batch (eviction, a rollout, a restore): emitted in the
        open transaction. Returns how many."""
        emitted = 0
        for version, result in results:
            if len(result.outputs) or result.ended:
                self.checkpointer.begin()
                self._uncommitted = True
                self._emit(result, version)
                emitted += len(result.outputs)
        return emitted

    def _switch_model(self, step_fn: StepFunction) -> None:
        old = self.models.version
        finals = self.models.switch(step_fn)
        ended = self._emit_finals(finals)
        s = self.settings
        self.metrics.set_build_info(step_fn.version, s.backend, s.guarantee)
        log_event(log, "model_switched", model_version=step_fn.version, previous=old,
                  policy=s.on_model_change, sequences_ended=ended,
                  draining=self.models.sequences())  # fmt: skip

    def _load_version(self, version: str) -> StepFunction | None:
        """A version a restored sequence started on, from the model store."""
        step_fn = self.store.load_version(version)
        if step_fn is None:
            log_event(log, "model_version_unavailable", level=logging.WARNING,
                      model_version=version, store=str(self.store.path),
                      outcome="its restored sequences end: reason model_unavailable")  # fmt: skip
        else:
            log_event(log, "model_version_loaded", model_version=version)
        return step_fn

    def _lag(self) -> dict[tuple[str, int], int]:
        """Lag of each assigned partition whose watermark and position are known."""
        topic = self.settings.input_topic
        where = {p: self.positions.get(p, -1) for p in self.assigned}
        unread = [TopicPartition(topic, p) for p, at in where.items() if at < 0]
        if unread:
            where.update((tp.partition, tp.offset) for tp in self.consumer.position(unread))
            unread = [tp for tp in unread if where[tp.partition] < 0]
        if unread:
            # Nothing read since assignment: librdkafka knows no position, yet reading starts at
            # the committed offset. Without it a quiet partition never counts as caught up and
            # its idle sequences never end.
            with contextlib.suppress(KafkaException):
                committed = self.consumer.committed(unread, timeout=1.0)
                where.update((tp.partition, tp.offset) for tp in committed)
        lags: dict[tuple[str, int], int] = {}
        for p, position in where.items():
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            # A high watermark below the position is stale (cached from an earlier assignment).
            if 0 <= position <= high:
                lags[(topic, p)] = high - position
        return lags

    # -- checkpoints and failures -------------------------------------------------------------

    def _to_commit(self) -> bool:
        return self._uncommitted or self.changelog.pending() or bool(self.checkpointer.behind)

    def _checkpoint(self, *, pipelined: bool = False) -> None:
        if self.failed or self._detached:
            return
        started = time.perf_counter()
        outcome = self.checkpointer.checkpoint(
            self.consumer, self.positions, self.assigned, pipelined=pipelined
        )
        self.metrics.add_stage_time("checkpoint", time.perf_counter() - started)
        if outcome == "committed":
            self._uncommitted = False
        elif outcome == "rewind":
            self._rewind()

    def _rewind(self) -> None:
        """Back to the last commit: drop state, restore it, and read again from the offsets."""
        parts = sorted(self.assigned)
        self.restorer.abandon(parts)
        self.models.drop_partitions(parts)
        self.models.take_dirty()
        if self.shadow is not None:
            self.shadow.drop_partitions(parts)
        self.changelog.forget_pending()
        self.checkpointer.forget()
        for p in parts:
            self.positions.pop(p, None)
        committed = self._committed(parts)
        self._start_restore(parts)
        for tp in committed:
            # Read again from there once restored; OFFSET_BEGINNING (-2) if nothing is committed.
            self._resume_at[tp.partition] = tp.offset if tp.offset >= 0 else -2
        log_event(log, "rewound", partitions=parts)

    def _committed(self, parts: list[int]) -> list[TopicPartition]:
        """The group's committed offsets of these partitions. A commit that failed because the
        group coordinator's broker died is followed by a rewind while the group moves: asked
        again until the new coordinator answers (or the worker is stopped)."""
        topic = self.settings.input_topic
        tps = [TopicPartition(topic, p) for p in parts]
        while True:
            try:
                return list(self.consumer.committed(tps, timeout=_COMMITTED_ASK_S))
            except KafkaException as exc:
                err = exc.args[0]
                if self.stopping or not broker_away(err):
                    raise
                log_event(log, "committed_offsets_retry", level=logging.WARNING, reason=str(err))

    def _on_consumer_error(self, err: KafkaError) -> None:
        """A fatal consumer error ends the worker (the consumer cannot be used any more), except a
        fencing of its static membership: the loop replaces the consumer (`_rejoin`)."""
        fatal = _is_fatal(err)
        level = logging.ERROR if fatal else logging.WARNING
        log_event(log, "kafka_error", level=level, error=str(err), fatal=fatal)
        if not fatal:
            return
        if _is_fencing(err):
            self._fenced = err
            return
        raise KafkaException(err)

    def _rejoin(self, err: KafkaError) -> None:
        """Replace a fenced group consumer with a new one under the same instance id. Brokers also
        fence a static member by its own instance id when the group coordinator restarts (seen
        with Kafka 4.x, apache/kafka#23542), so one fencing proves no other process has the id;
        fencings again and again do, and then the worker ends saying so."""
        now = time.monotonic()
        self._rejoins = [t for t in self._rejoins if now - t < _REJOIN_WINDOW_S]
        if len(self._rejoins) >= _MAX_REJOINS:
            s = self.settings
            raise InstanceFencedError(
                f"fenced {len(self._rejoins) + 1} times within {_REJOIN_WINDOW_S:g} s: another "
                f"worker of group {s.group_id!r} has this worker's instance id {s.instance_id!r} "
                "(group.instance.id); give every worker its own --instance-id (INSTANCE_ID): two "
                "workers with one id fence each other"
            )
        self._rejoins.append(now)
        self._fenced = None
        # As when partitions are lost: drop their state and commit nothing of them.
        parts = sorted(self.assigned)
        if self.checkpointer.in_transaction:
            self.checkpointer.abort()
        self._drop(parts)
        self._publish_assignment("lost")
        self._detached = True
        try:
            with contextlib.suppress(KafkaException):  # a fenced consumer may refuse to close
                self.consumer.close()
        finally:
            self._detached = False
        self.consumer = self.clients.group_consumer(
            self._on_consumer_error, self.checkpointer.on_commit
        )
        self._subscribe()
        log_event(log, "rejoined", level=logging.WARNING, reason=str(err),
                  instance_id=self.settings.instance_id, rejoins=len(self._rejoins))  # fmt: skip

    def _on_kafka_error(self, err: KafkaError) -> None:
        level = logging.ERROR if err.fatal() else logging.WARNING
        log_event(log, "kafka_error", level=level, error=str(err), fatal=err.fatal())
        if err.fatal() and not self.transactional:
            raise KafkaException(err)

    # -- rebalances ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = sorted(tp.partition for tp in partitions if tp.topic == self.settings.input_topic)
        # The restore runs in the poll loop while the open transaction goes on: commit it first,
        # so that no transaction holds anything from before the new partitions came.
        self._checkpoint()
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self.assigned.update(parts)
        self._publish_assignment("assign")
        if self.departed is not None:
            self.departed.after_rebalance()
        self._start_restore(parts)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = [tp.partition for tp in partitions if tp.topic == self.settings.input_topic]
        self.restorer.abandon(parts)
        self._checkpoint()
        self._drop(parts)
        self._publish_assignment("revoke")

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = [tp.partition for tp in partitions if tp.topic == self.settings.input_topic]
        self._drop(parts)
        if self.checkpointer.in_transaction:
            # The open transaction holds outputs of partitions that are no longer ours.
            self.checkpointer.abort()
            try:
                self._rewind()
            except KafkaException as exc:
                # Lost because the consumer was fenced: the rejoin restores what is assigned.
                if not _is_fencing(exc.args[0]) and not _is_fatal(exc.args[0]):
                    raise
                self._fenced = self._fenced or exc.args[0]
        self._publish_assignment("lost")

    def _drop(self, parts: list[int]) -> None:
        # Also after a revoke's checkpoint, which may have rewound: a rewind restarts the restore
        # of every partition still held, these among them.
        self.restorer.abandon(parts)
        dropped = self.models.drop_partitions(parts)
        if self.shadow is not None:
            self.shadow.drop_partitions(parts)
        self.changelog.drop_partitions(parts)
        self.checkpointer.forget(parts)
        for p in parts:
            self.positions.pop(p, None)
            self._resume_at.pop(p, None)
        self.assigned.difference_update(parts)
        log_event(log, "partitions_dropped", partitions=sorted(parts), sequences=dropped)

    def _publish_assignment(self, kind: RebalanceKind) -> None:
        topic = self.settings.input_topic
        self.health.set_assigned((topic, p) for p in self.assigned)
        self.metrics.count_rebalance(kind, len(self.assigned))
        log_event(log, kind, partitions=sorted(self.assigned))

    def _start_restore(self, parts: list[int]) -> None:
        """Pause the partitions and restore them from the poll loop, a slice at a time: a long
        restore must neither hold a transaction open nor miss the poll interval."""
        if not parts:
            return
        topic = self.settings.input_topic
        self.consumer.pause([TopicPartition(topic, p) for p in parts])
        self.health.restore_started((topic, p) for p in parts)
        self.restorer.add(parts)
        self.metrics.set_restoring(len(self.restorer.pending))

    def _send_changelog_slice(self) -> None:
        started = time.perf_counter()
        self.changelog.send_some(self.assigned)
        self.metrics.add_stage_time("checkpoint", time.perf_counter() - started)

    def _restore_slice(self) -> None:
        finished, stats = self.restorer.step(_RESTORE_SLICE_S)
        topic = self.settings.input_topic
        if finished:
            # Every key of these partitions is restored: their records may be read now.
            self.consumer.resume([TopicPartition(topic, p) for p in finished])
            for p in finished:
                if p in self._resume_at:
                    self.consumer.seek(TopicPartition(topic, p, self._resume_at.pop(p)))
            self.health.restore_finished((topic, p) for p in finished)
        self.metrics.set_restoring(len(self.restorer.pending))
        if finals := self.models.take_finals():
            self._transacting(self._emit_restore_finals, finals)
        if stats is not None:
            self._restored(stats)

    def _emit_restore_finals(self, finals: list[tuple[str, BatchResult]]) -> None:
        ended = self._emit_finals(finals)
        log_event(log, "restored_sequences_ended", sequences=ended,
                  policy=self.models.policy,
                  versions=sorted({v for v, _ in finals}))  # fmt: skip

    def _restored(self, stats: RestoreStats) -> None:
        self.metrics.observe_restore(stats.seconds, stats.records, stats.discarded)
        if stats.corrupt:
            self.metrics.count_corrupt_states(len(stats.corrupt))
            for c in stats.corrupt[:_CORRUPT_LOGGED]:
                log_event(log, "corrupt_state", level=logging.ERROR, key=c.key,
                          partition=c.partition, offset=c.offset, reason=c.reason,
                          outcome="the key starts fresh")  # fmt: skip
        log_event(
            log,
            "restored",
            partitions=list(stats.partitions),
            records=stats.records,
            seconds=round(stats.seconds, 3),
            active_sequences=len(self.models),
            outcomes=dict(stats.outcomes),
            corrupt_keys=len(stats.corrupt),
        )


def _is_fatal(err: KafkaError) -> bool:
    # librdkafka hands a fatal consumer error to error_cb with the code _FATAL and fatal() false.
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def _is_fencing(err: KafkaError) -> bool:
    return err.code() == KafkaError.FENCED_INSTANCE_ID or "group.instance.id" in err.str()
