"""The metrics catalogue: naming conventions, and what each hot-path method updates."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumer.codecs.inputs import DLQ_REASONS
from consumer.metrics import END_REASONS, PROBABILITY_BUCKETS, BatchHistogram, Metrics

# Every non-counter name ends with its unit (or what it counts); counters end in _total.
UNIT_SUFFIXES = (
    "_seconds",
    "_bytes",
    "_records",
    "_waves",
    "_probability",
    "_sequences",
    "_partitions",
    "_info",
)
EXPECTED = {
    "lstm_scorer_records_consumed",
    "lstm_scorer_samples_consumed",
    "lstm_scorer_outputs_produced",
    "lstm_scorer_dlq_records",
    "lstm_scorer_changelog_records_produced",
    "lstm_scorer_batches",
    "lstm_scorer_batch_records",
    "lstm_scorer_batch_waves",
    "lstm_scorer_model_step_seconds",
    "lstm_scorer_stage_seconds",
    "lstm_scorer_end_to_end_latency_seconds",
    "lstm_scorer_output_probability",
    "lstm_scorer_active_sequences",
    "lstm_scorer_state_table_bytes",
    "lstm_scorer_sequences_started",
    "lstm_scorer_sequences_ended",
    "lstm_scorer_replayed_records_skipped",
    "lstm_scorer_restore_in_progress_partitions",
    "lstm_scorer_restore_seconds",
    "lstm_scorer_restored_records",
    "lstm_scorer_restored_states_discarded",
    "lstm_scorer_restored_states_corrupt",
    "lstm_scorer_commit_seconds",
    "lstm_scorer_commit_failures",
    "lstm_scorer_commit_blocked_seconds",
    "lstm_scorer_rebalances",
    "lstm_scorer_assigned_partitions",
    "lstm_scorer_consumer_lag_records",
    "lstm_scorer_producer_queue_records",
    "lstm_scorer_build_info",
    "lstm_scorer_model_reloads",
    "lstm_scorer_model_sequences",
    "lstm_scorer_model_outputs",
    "lstm_scorer_model_draining_seconds",
    "lstm_scorer_shadow_outputs",
    "lstm_scorer_shadow_compared_outputs",
    "lstm_scorer_shadow_abs_difference",
    "lstm_scorer_shadow_agreeing_outputs",
    "lstm_scorer_last_poll_timestamp_seconds",
    "lstm_scorer_start_time_seconds",
}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, clock=Clock(1_700_000_000.0))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def exercise(m: Metrics) -> None:
    """Touches every method, so labelled metrics have series to check."""
    m.set_build_info("3f2a9c1e", "numpy", "at-least-once")
    m.observe_batch(records=10, samples=12, waves=3, step_seconds=0.002)
    m.observe_outputs([0.2, 0.9])
    m.observe_latencies([0.01])
    m.count_dlq("invalid_json")
    m.count_changelog(4)
    m.count_sequences_started(2)
    m.count_sequences_ended("end")
    m.count_skipped(1)
    m.set_state_table(active_sequences=2, nbytes=4096)
    with m.restoring(partitions=2):
        m.observe_restore(seconds=0.5, records=100, discarded=1)
    m.observe_commit(0.01)
    m.count_commit_failure("delivery")
    m.count_rebalance("assign", assigned_partitions=3)
    m.set_lag({("samples", 0): 5})
    m.set_producer_queue(7)
    m.mark_polled()
    m.rollout.count_reload("loaded")
    m.rollout.count_outputs("3f2a9c1e", 2)
    m.rollout.set_versions({"3f2a9c1e": 2, "0b1d2e3f": 1}, {"0b1d2e3f": 12.5})
    m.shadow.count_outputs("cand0001", 2)
    m.shadow.observe("3f2a9c1e", "cand0001", compared=2, diff=0.03, agreeing=2)


def test_every_metric_follows_the_conventions(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    exercise(metrics)
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert {f.name for f in families} == EXPECTED
    for family in families:
        assert family.name.startswith("lstm_scorer_"), family.name
        assert family.name == family.name.lower()
        assert family.documentation.strip(), f"{family.name} has no help text"
        assert not any(u in family.name for u in ("_ms", "millis", "_kb", "_mb", "duration"))
        if family.type == "counter":
            assert family.samples
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        else:
            assert not family.name.endswith("_total"), family.name
            assert family.name.endswith(UNIT_SUFFIXES), family.name


def test_bucket_ranges(registry: CollectorRegistry, metrics: Metrics) -> None:
    def bounds(name: str) -> list[float]:
        families = text_string_to_metric_families(generate_latest(registry).decode())
        family = next(f for f in families if f.name == name)
        return [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]

    step = bounds("lstm_scorer_model_step_seconds")
    assert (step[0], step[-2], step[-1]) == (50e-6, 1.0, float("inf"))
    latency = bounds("lstm_scorer_end_to_end_latency_seconds")
    assert (latency[0], latency[-2], latency[-1]) == (0.001, 30.0, float("inf"))
    probability = bounds("lstm_scorer_output_probability")
    assert probability[:-1] == pytest.approx([0.05 * i for i in range(1, 21)])


def test_observe_batch(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_batch(records=10, samples=12, waves=3, step_seconds=0.002)
    metrics.observe_batch(records=1, samples=1, waves=1, step_seconds=0.0001)
    assert value(registry, "lstm_scorer_batches_total") == 2
    assert value(registry, "lstm_scorer_records_consumed_total") == 11
    assert value(registry, "lstm_scorer_samples_consumed_total") == 13
    assert value(registry, "lstm_scorer_batch_records_bucket", le="5.0") == 1
    assert value(registry, "lstm_scorer_batch_records_sum") == 11
    assert value(registry, "lstm_scorer_batch_waves_bucket", le="2.0") == 1
    assert value(registry, "lstm_scorer_batch_waves_bucket", le="3.0") == 2
    assert value(registry, "lstm_scorer_model_step_seconds_bucket", le="0.0001") == 1
    assert value(registry, "lstm_scorer_model_step_seconds_count") == 2


def test_observe_outputs(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_outputs(np.array([0.02, 0.5, 0.5, 1.0, np.nan], dtype=np.float32))
    assert value(registry, "lstm_scorer_outputs_produced_total") == 5
    assert value(registry, "lstm_scorer_output_probability_bucket", le="0.05") == 1
    assert value(registry, "lstm_scorer_output_probability_bucket", le="0.45") == 1
    assert value(registry, "lstm_scorer_output_probability_bucket", le="0.5") == 3
    assert value(registry, "lstm_scorer_output_probability_bucket", le="1.0") == 4
    assert value(registry, "lstm_scorer_output_probability_count") == 4  # NaN left out
    assert value(registry, "lstm_scorer_output_probability_sum") == pytest.approx(2.02)
    # Multi-unit model: one output record per row, every unit observed.
    metrics.observe_outputs(np.full((2, 3), 0.7))
    assert value(registry, "lstm_scorer_outputs_produced_total") == 7
    assert value(registry, "lstm_scorer_output_probability_count") == 10


def test_observe_latencies(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_latencies([-0.003, 0.0005, 0.02, 40.0])
    assert value(registry, "lstm_scorer_end_to_end_latency_seconds_bucket", le="0.001") == 2
    assert value(registry, "lstm_scorer_end_to_end_latency_seconds_bucket", le="0.025") == 3
    assert value(registry, "lstm_scorer_end_to_end_latency_seconds_bucket", le="30.0") == 3
    assert value(registry, "lstm_scorer_end_to_end_latency_seconds_bucket", le="+Inf") == 4


def test_batch_histogram_buckets_like_prometheus_histogram() -> None:
    values = np.concatenate([np.array(PROBABILITY_BUCKETS), np.random.default_rng(7).random(500)])
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    BatchHistogram("h", "h", PROBABILITY_BUCKETS, ours).observe_many(values)
    reference = Histogram("h", "h", buckets=PROBABILITY_BUCKETS, registry=theirs)
    for v in values.tolist():
        reference.observe(v)
    for le in [*PROBABILITY_BUCKETS, float("inf")]:
        label = "+Inf" if le == float("inf") else repr(le)
        assert ours.get_sample_value("h_bucket", {"le": label}) == theirs.get_sample_value(
            "h_bucket", {"le": label}
        )
    assert ours.get_sample_value("h_sum") == pytest.approx(theirs.get_sample_value("h_sum"))


def test_sequence_lifecycle_and_cached_children(
    registry: CollectorRegistry, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    for reason in END_REASONS:  # present from the start, so rate() works from zero
        assert value(registry, "lstm_scorer_sequences_ended_total", reason=reason) == 0
    for dlq_reason in DLQ_REASONS:  # wrong_partition (from the engine) too
        assert value(registry, "lstm_scorer_dlq_records_total", reason=dlq_reason) == 0
    metrics.count_dlq("too_large")

    def no_lookups(*args: object, **kwargs: object) -> None:
        raise AssertionError("label lookup on the hot path")

    monkeypatch.setattr(metrics.sequences_ended, "labels", no_lookups)
    monkeypatch.setattr(metrics.dlq_records, "labels", no_lookups)
    monkeypatch.setattr(metrics.rebalances, "labels", no_lookups)
    metrics.count_sequences_started(3)
    metrics.count_sequences_ended("max_steps", 2)
    metrics.count_sequences_ended("reset")
    metrics.count_dlq("too_large", 4)
    metrics.count_rebalance("lost", assigned_partitions=0)
    assert value(registry, "lstm_scorer_sequences_started_total") == 3
    assert value(registry, "lstm_scorer_sequences_ended_total", reason="max_steps") == 2
    assert value(registry, "lstm_scorer_sequences_ended_total", reason="reset") == 1
    assert value(registry, "lstm_scorer_sequences_ended_total", reason="end") == 0
    assert value(registry, "lstm_scorer_dlq_records_total", reason="too_large") == 5
    assert value(registry, "lstm_scorer_rebalances_total", kind="lost") == 1
    assert value(registry, "lstm_scorer_rebalances_total", kind="assign") == 0


def test_state_restore_commit_and_producer(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.set_state_table(active_sequences=5, nbytes=2048)
    metrics.count_skipped(3)
    metrics.observe_restore(seconds=1.5, records=40, discarded=2)
    metrics.observe_commit(0.004)
    metrics.count_commit_failure("offset_commit")
    metrics.count_changelog(9)
    metrics.set_producer_queue(11)
    assert value(registry, "lstm_scorer_active_sequences") == 5
    assert value(registry, "lstm_scorer_state_table_bytes") == 2048
    assert value(registry, "lstm_scorer_replayed_records_skipped_total") == 3
    assert value(registry, "lstm_scorer_restore_seconds_bucket", le="1.0") == 0
    assert value(registry, "lstm_scorer_restore_seconds_bucket", le="2.5") == 1
    assert value(registry, "lstm_scorer_restored_records_total") == 40
    assert value(registry, "lstm_scorer_restored_states_discarded_total") == 2
    assert value(registry, "lstm_scorer_commit_seconds_bucket", le="0.005") == 1
    assert value(registry, "lstm_scorer_commit_failures_total", kind="offset_commit") == 1
    assert value(registry, "lstm_scorer_commit_failures_total", kind="delivery") == 0
    assert value(registry, "lstm_scorer_changelog_records_produced_total") == 9
    assert value(registry, "lstm_scorer_producer_queue_records") == 11


def test_lag_series_removed_for_partitions_no_longer_assigned(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    lag = "lstm_scorer_consumer_lag_records"
    metrics.set_lag({("samples", 0): 5, ("samples", 1): 7})
    assert value(registry, lag, topic="samples", partition="0") == 5
    metrics.set_lag({("samples", 1): 2, ("samples", 2): 0})
    assert value(registry, lag, topic="samples", partition="0") is None
    assert value(registry, lag, topic="samples", partition="1") == 2
    assert value(registry, lag, topic="samples", partition="2") == 0
    metrics.set_lag({})  # all revoked
    families = text_string_to_metric_families(generate_latest(registry).decode())
    assert next(f for f in families if f.name == lag).samples == []


def test_info_poll_and_start_time(registry: CollectorRegistry) -> None:
    clock = Clock(100.0)
    m = Metrics(registry, clock=clock)
    assert m.start_time == 100.0
    assert value(registry, "lstm_scorer_start_time_seconds") == 100.0
    clock.now = 160.5
    m.mark_polled()
    assert value(registry, "lstm_scorer_last_poll_timestamp_seconds") == 160.5
    m.set_build_info("3f2a9c1e", "keras-batched", "exactly-once")
    samples = {
        s.name: s.labels
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    info = samples["lstm_scorer_build_info"]
    assert info["model_version"] == "3f2a9c1e"
    assert info["backend"] == "keras-batched"
    assert info["guarantee"] == "exactly-once"
    assert info["version"]


def test_restore_in_progress_counts_partitions_until_the_restore_ends(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    gauge = "lstm_scorer_restore_in_progress_partitions"
    assert value(registry, gauge) == 0
    with metrics.restoring(partitions=3):
        assert value(registry, gauge) == 3
        with metrics.restoring(partitions=1):  # a rewind during a restore
            assert value(registry, gauge) == 4
        assert value(registry, gauge) == 3
    assert value(registry, gauge) == 0
    with pytest.raises(TimeoutError), metrics.restoring(partitions=2):
        assert value(registry, gauge) == 2
        raise TimeoutError("changelog not read in time")
    assert value(registry, gauge) == 0


def test_versions_no_longer_held_lose_their_series(registry: CollectorRegistry) -> None:
    rollout = Metrics(registry).rollout
    rollout.count_outputs("old", 3)
    rollout.set_versions({"new": 5, "old": 2}, {"old": 30.0})
    assert value(registry, "lstm_scorer_model_draining_seconds", model_version="old") == 30.0
    assert value(registry, "lstm_scorer_model_sequences", model_version="old") == 2
    rollout.set_versions({"new": 7}, {})
    assert value(registry, "lstm_scorer_model_sequences", model_version="new") == 7
    for name in ("model_sequences", "model_outputs_total", "model_draining_seconds"):
        assert value(registry, f"lstm_scorer_{name}", model_version="old") is None
