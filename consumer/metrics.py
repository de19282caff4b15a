"""Every Prometheus metric of the service, defined once, on an injectable registry.

Names start with `lstm_scorer_`, use base units (`_seconds`, `_bytes`) and counters end in
`_total`. The runner calls the small methods below once per micro-batch (or per event); label
children are resolved once here, so nothing looks labels up per record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from consumer.codecs.inputs import DLQ_REASONS, DlqReason
from consumer.config import Guarantee
from consumer.engine.results import EndReason
from consumer.model.step import BackendName
from consumer.rollout_metrics import RolloutMetrics, ShadowMetrics

NAMESPACE = "lstm_scorer"
DISTRIBUTION = "lstm-stream-scorer"

END_REASONS: tuple[EndReason, ...] = get_args(EndReason)
RebalanceKind = Literal["assign", "revoke", "lost"]
REBALANCE_KINDS: tuple[RebalanceKind, ...] = get_args(RebalanceKind)
CommitFailure = Literal["delivery", "offset_commit", "transaction_abort", "producer_fenced"]
COMMIT_FAILURES: tuple[CommitFailure, ...] = get_args(CommitFailure)
# The parts of a checkpoint, each of which holds the loop (it consumes nothing meanwhile): writing
# the changelog, flushing the producer, committing the offsets; exactly-once, sending the offsets
# into the transaction and committing it.
CommitStep = Literal["changelog", "flush", "offsets", "send_offsets", "commit_transaction"]
COMMIT_STEPS: tuple[CommitStep, ...] = get_args(CommitStep)
# Where the loop's time goes, stage by stage; a checkpoint's own steps are `commit_blocked`.
Stage = Literal[
    "consume",
    "decode",
    "key_to_slot",
    "model_step",
    "bookkeeping",
    "encode",
    "produce",
    "checkpoint",
]
STAGES: tuple[Stage, ...] = get_args(Stage)

STEP_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
LATENCY_BUCKETS = (1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COMMIT_BUCKETS = LATENCY_BUCKETS
RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
BATCH_RECORD_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5)
WAVE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256, 1024)


def service_version() -> str:
    """The installed package's version; "unknown" when running from a source tree."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


class BatchHistogram(Collector):
    """A histogram fed whole arrays: numpy bucketing costs about 0.05 µs a value where
    `Histogram.observe` costs about 2 µs, which matters at one observation per sample."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self._documentation = documentation
        self._edges = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Adds every value; NaN is left out (it belongs to no bucket)."""
        flat = np.asarray(values, dtype=np.float64).ravel()
        flat = flat[~np.isnan(flat)]
        if flat.size == 0:
            return
        # side="left": a value equal to an edge falls in that bucket, as `le` means.
        index = np.searchsorted(self._edges, flat, side="left")
        counts = np.bincount(index, minlength=self._counts.size)
        total = float(flat.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self._documentation)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        labels = [repr(edge) for edge in self._edges.tolist()] + ["+Inf"]
        yield HistogramMetricFamily(
            self.name,
            self._documentation,
            buckets=list(zip(labels, cumulative, strict=True)),
            sum_value=total,
        )


class Metrics:
    """The service's metrics. Thread-safe except `set_lag`, which the poll loop alone calls."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        ns = NAMESPACE
        # Process-wide: in the text format `_created` series show up as extra gauge families that
        # double the series count and that no dashboard reads.
        disable_created_metrics()  # type: ignore[no-untyped-call]

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, labelnames=labels, namespace=ns, registry=registry)

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, labelnames=labels, namespace=ns, registry=registry)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, buckets=buckets, namespace=ns, registry=registry)

        # Throughput in: records are Kafka messages, a record may carry several samples.
        self.records_consumed = counter("records_consumed", "Input records polled, valid or not.")
        # Throughput of the model: one per sample applied to a sequence's state.
        self.samples_consumed = counter("samples_consumed", "Input samples applied to a state.")
        # Throughput out: what downstream receives.
        self.outputs_produced = counter("outputs_produced", "Output records produced.")
        # Bad input by cause; a sudden rise usually means a broken producer deploy.
        self.dlq_records = counter(
            "dlq_records", "Input records sent to the dead-letter topic.", ["reason"]
        )
        # State durability traffic: updates and tombstones written to the changelog.
        self.changelog_records = counter(
            "changelog_records_produced", "State records and tombstones produced to the changelog."
        )
        # Micro-batch rate; with batch_records it shows whether batching pays off.
        self.batches = counter("batches", "Micro-batches processed.")
        # How full micro-batches are: small means the loop is idle or max-wait is too short.
        self.batch_records = histogram(
            "batch_records", "Input records per micro-batch.", BATCH_RECORD_BUCKETS
        )
        # Waves = model calls per batch; many means few hot keys dominate the batch.
        self.batch_waves = histogram(
            "batch_waves", "Batched model steps (waves) per micro-batch.", WAVE_BUCKETS
        )
        # Cost of the model itself, per micro-batch, all waves together.
        self.stage_seconds = counter(
            "stage_seconds",
            "Time the processing loop spent in each stage, by stage (divide by records consumed"
            " for the cost per record).",
            ["stage"],
        )
        self.model_step_seconds = histogram(
            "model_step_seconds", "Time in the model step per micro-batch.", STEP_BUCKETS
        )
        # What users feel: output produced minus the input record's timestamp.
        self.latency_seconds = BatchHistogram(
            f"{ns}_end_to_end_latency_seconds",
            "Output production time minus input record timestamp.",
            LATENCY_BUCKETS,
            registry,
        )
        # Distribution of emitted probabilities, to spot drift in input or model.
        self.probability = BatchHistogram(
            f"{ns}_output_probability", "Emitted probabilities.", PROBABILITY_BUCKETS, registry
        )
        # Size of the state table, in sequences and in memory.
        self.active_sequences = gauge("active_sequences", "Sequences with state in memory.")
        self.state_table_bytes = gauge("state_table_bytes", "Memory held by the state table.")
        # Sequence lifecycle: started vs ended shows leaks; idle_timeout shows missing ends.
        self.sequences_started = counter("sequences_started", "Sequences started.")
        self.sequences_ended = counter(
            "sequences_ended", "Sequences ended or dropped, by reason.", ["reason"]
        )
        # Replays after a crash or rebalance: records already reflected in restored state.
        self.records_skipped = counter(
            "replayed_records_skipped", "Input records skipped as already applied to state."
        )
        # Recovery cost on assignment. The gauge is what a stuck restore shows while it lasts; the
        # histogram only hears of a restore when it ends.
        self.restore_in_progress = gauge(
            "restore_in_progress_partitions", "Input partitions whose state is being restored."
        )
        self.restore_seconds = histogram(
            "restore_seconds", "Time to restore state of assigned partitions.", RESTORE_BUCKETS
        )
        self.restored_records = counter("restored_records", "Changelog records read in restores.")
        # Restored states of a version the worker does not serve: ended with a final record.
        self.states_discarded = counter(
            "restored_states_discarded",
            "Restored states of a model version not served (ended with a final record).",
        )
        # The newest changelog record of these keys could not be read: they started afresh.
        self.states_corrupt = counter(
            "restored_states_corrupt",
            "Keys whose newest changelog record was corrupt at restore; they start fresh.",
        )
        # Commit (or transaction) cost and failures by kind.
        self.commit_seconds = histogram(
            "commit_seconds",
            "Time to flush, check deliveries and commit.",
            COMMIT_BUCKETS,
        )
        self.commit_failures = counter("commit_failures", "Failed commits, by kind.", ["kind"])
        self.commit_blocked_seconds = Histogram(
            "commit_blocked_seconds",
            "Time a checkpoint's steps held the loop (nothing consumed meanwhile), by step.",
            ["step"],
            buckets=COMMIT_BUCKETS,
            namespace=ns,
            registry=registry,
        )
        # Group churn; "lost" means the worker was too slow and state was dropped.
        self.rebalances = counter("rebalances", "Rebalance callbacks, by kind.", ["kind"])
        self.assigned_partitions = gauge("assigned_partitions", "Input partitions assigned.")
        # Backlog per partition; series of partitions no longer assigned are removed.
        self.consumer_lag = gauge(
            "consumer_lag_records",
            "Records between the high watermark and the consumer position.",
            ["topic", "partition"],
        )
        # Outputs waiting in the producer; high means the broker is slow (backpressure).
        self.producer_queue = gauge(
            "producer_queue_records", "Records waiting in the producer queue."
        )
        # Which model, backend and guarantee this worker runs.
        self.build_info = Info(
            "build",
            "Service version, model version, backend, guarantee.",
            namespace=ns,
            registry=registry,
        )
        self.rollout = RolloutMetrics(registry, ns)
        self.shadow = ShadowMetrics(registry, ns)
        # For health: a stuck loop stops moving this.
        self.last_poll = gauge(
            "last_poll_timestamp_seconds", "Unix time of the last poll of the consumer."
        )
        # Restarts show as jumps.
        self.start_time_seconds = gauge("start_time_seconds", "Unix time the service started.")

        self.start_time = clock()
        self.start_time_seconds.set(self.start_time)
        self._ended = {r: self.sequences_ended.labels(reason=r) for r in END_REASONS}
        self._commit_failures = {k: self.commit_failures.labels(kind=k) for k in COMMIT_FAILURES}
        # Every step's series from the start, at zero, so that rates of each exist at once.
        self._commit_steps = {s: self.commit_blocked_seconds.labels(step=s) for s in COMMIT_STEPS}
        self._stages = {s: self.stage_seconds.labels(stage=s) for s in STAGES}
        self._rebalances = {k: self.rebalances.labels(kind=k) for k in REBALANCE_KINDS}
        # Every reason present from the start, so rate() and "by reason" panels work from zero.
        self._dlq = {r: self.dlq_records.labels(reason=r) for r in DLQ_REASONS}
        self._lag: dict[tuple[str, int], Gauge] = {}

    def set_build_info(
        self, model_version: str, backend: BackendName, guarantee: Guarantee
    ) -> None:
        self.build_info.info(
            {
                "version": service_version(),
                "model_version": model_version,
                "backend": backend,
                "guarantee": guarantee,
            }
        )

    def observe_batch(self, records: int, samples: int, waves: int, step_seconds: float) -> None:
        """One micro-batch: input records polled (bad ones too), samples applied, model calls,
        and the model's time for all of them."""
        self.batches.inc()
        self.records_consumed.inc(records)
        self.samples_consumed.inc(samples)
        self.batch_records.observe(records)
        self.batch_waves.observe(waves)
        self.model_step_seconds.observe(step_seconds)

    def add_stage_time(self, stage: Stage, seconds: float) -> None:
        self._stages[stage].inc(seconds)

    def observe_outputs(self, probabilities: npt.ArrayLike) -> None:
        """Outputs produced: one row per output record (several columns for multi-unit models)."""
        values = np.asarray(probabilities, dtype=np.float64)
        self.outputs_produced.inc(values.shape[0] if values.ndim else 1)
        self.probability.observe_many(values)

    def observe_latencies(self, seconds: npt.ArrayLike) -> None:
        """End-to-end latencies of produced outputs; clock skew can make some negative: kept as
        is, they land in the lowest bucket."""
        self.latency_seconds.observe_many(seconds)

    def count_dlq(self, reason: DlqReason, records: int = 1) -> None:
        self._dlq[reason].inc(records)

    def count_changelog(self, records: int) -> None:
        self.changelog_records.inc(records)

    def count_sequences_started(self, sequences: int) -> None:
        self.sequences_started.inc(sequences)

    def count_sequences_ended(self, reason: EndReason, sequences: int = 1) -> None:
        self._ended[reason].inc(sequences)

    def count_skipped(self, records: int) -> None:
        self.records_skipped.inc(records)

    def set_state_table(self, active_sequences: int, nbytes: int) -> None:
        self.active_sequences.set(active_sequences)
        self.state_table_bytes.set(nbytes)

    @contextmanager
    def restoring(self, partitions: int) -> Iterator[None]:
        """Around one restore of `partitions` input partitions; counted until it returns or
        raises, so a failed restore does not leave the gauge up."""
        self.restore_in_progress.inc(partitions)
        try:
            yield
        finally:
            self.restore_in_progress.dec(partitions)

    def observe_restore(self, seconds: float, records: int, discarded: int) -> None:
        """One restore: its duration, changelog records read, states dropped for their version."""
        self.restore_seconds.observe(seconds)
        self.restored_records.inc(records)
        self.states_discarded.inc(discarded)

    def set_restoring(self, partitions: int) -> None:
        """Input partitions whose restore is under way now."""
        self.restore_in_progress.set(partitions)

    def count_corrupt_states(self, keys: int) -> None:
        self.states_corrupt.inc(keys)

    def observe_commit(self, seconds: float) -> None:
        self.commit_seconds.observe(seconds)

    def observe_commit_step(self, step: CommitStep, seconds: float) -> None:
        self._commit_steps[step].observe(seconds)

    def count_commit_failure(self, kind: CommitFailure) -> None:
        self._commit_failures[kind].inc()

    def count_rebalance(self, kind: RebalanceKind, assigned_partitions: int) -> None:
        """A rebalance callback and the number of partitions assigned after it."""
        self._rebalances[kind].inc()
        self.assigned_partitions.set(assigned_partitions)

    def set_lag(self, partitions: Mapping[tuple[str, int], int]) -> None:
        """Lag of every assigned (topic, partition); series of any other partition are removed.
        Leave out partitions whose lag is unknown."""
        for key in self._lag.keys() - partitions.keys():
            del self._lag[key]
            self.consumer_lag.remove(key[0], str(key[1]))
        for key, lag in partitions.items():
            child = self._lag.get(key)
            if child is None:
                child = self._lag[key] = self.consumer_lag.labels(topic=key[0], partition=key[1])
            child.set(lag)

    def set_producer_queue(self, records: int) -> None:
        self.producer_queue.set(records)

    def mark_polled(self) -> None:
        self.last_poll.set(self._clock())
