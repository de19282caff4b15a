"""The service end to end: real worker processes, a real broker. Scores are checked against Keras
`model(x)` on every prefix of the input as it lies in the input topic (`tests/keras_oracle.py`),
an oracle independent of the service's engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Message, Producer

from consumer.codecs.inputs import encode_input
from consumer.codecs.outputs import OutputRecord
from producer_sim.cluster.processes import wait_for
from tests.bad_inputs import BAD_INPUTS
from tests.kafka_harness import NewTopicFactory, consume_until, reader
from tests.keras_oracle import Ident, expected_outputs
from tests.service_harness import (
    Deployment,
    Record,
    dedupe,
    interleaved_stream,
    produce,
    save_user_model,
    topic_inputs,
)

PARTITIONS = 6
KERAS_TOLERANCE = 1e-5  # float32 against Keras's own evaluation


@pytest.fixture(scope="module")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_user_model(tmp_path_factory.mktemp("model") / "user.keras", seed=3)


@pytest.fixture
def service(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    unique_group: Callable[[], str],
    user_model: Path,
    tmp_path: Path,
) -> Iterator[Deployment]:
    svc = Deployment(
        kafka_bootstrap,
        new_topic(PARTITIONS),
        new_topic(PARTITIONS),
        new_topic(1),
        unique_group(),
        user_model,
        tmp_path,
    )
    yield svc
    svc.stop_all()


def keras_outputs(service: Deployment, *, skip_rejected: bool = False) -> dict[Ident, OutputRecord]:
    """Every output the input topic as it lies now must give: Keras on every prefix."""
    inputs = topic_inputs(service.bootstrap, service.input, PARTITIONS, skip_rejected)
    return expected_outputs(service.model, inputs)


def assert_scored_like_keras(got: list[OutputRecord], want: dict[Ident, OutputRecord]) -> None:
    """Every output expected and no other, each with Keras's reason and probability."""
    scored: dict[Ident, OutputRecord] = {}
    for o in got:
        assert o.partition is not None and o.offset is not None
        scored[(o.sequence_id, o.partition, o.offset, o.step, o.final)] = o
    assert sorted(set(want) - set(scored)) == [], "outputs missing"
    assert sorted(set(scored) - set(want)) == [], "outputs nobody expected"
    for ident, o in scored.items():
        expected = want[ident]
        assert o.reason == expected.reason, ident
        assert o.probability is not None and expected.probability is not None
        assert abs(o.probability - expected.probability) <= KERAS_TOLERANCE, (ident, o, expected)


def test_one_worker_equals_the_oracle(service: Deployment) -> None:
    records = interleaved_stream(np.random.default_rng(1), 1000)
    w = service.worker()
    produce(service.bootstrap, service.input, records)
    want = keras_outputs(service)
    got, repeats = dedupe(service.outputs(len(want)))
    assert_scored_like_keras(got, want)
    assert repeats == 0
    assert sum(1 for o in got if o.final) > 0
    assert w.metric("lstm_scorer_outputs_produced_total") == len(got)
    assert w.terminate() == 0


def test_three_workers_share_the_partitions_without_overlap(service: Deployment) -> None:
    records = interleaved_stream(np.random.default_rng(2), 1500)
    workers = [service.worker() for _ in range(3)]
    half = len(records) // 2
    produce(service.bootstrap, service.input, records[:half])
    for w in workers:
        w.wait_ready()
    produce(service.bootstrap, service.input, records[half:])
    want = keras_outputs(service)
    got, repeats = dedupe(service.outputs(len(want)))
    assert_scored_like_keras(got, want)
    assert repeats == 0  # no input position scored twice
    assert sum(w.metric("lstm_scorer_assigned_partitions") for w in workers) == PARTITIONS
    for w in workers:
        assert w.terminate() == 0


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_killed_worker_is_replaced_and_state_restored(
    service: Deployment, guarantee: str
) -> None:
    records = interleaved_stream(np.random.default_rng(3), 1200)
    first = service.worker("--guarantee", guarantee)
    third = len(records) // 3
    produce(service.bootstrap, service.input, records[:third])
    isolation = "read_committed" if guarantee == "exactly-once" else "read_uncommitted"
    service.progress(third // 2, isolation)  # the worker is well into the stream
    # and has checkpointed: outputs are sent before the state that claims them, so outputs alone
    # do not show that there is state to restore.
    wait_for(lambda: service.checkpointed() or None, 60, "a first checkpoint")
    first.kill()
    produce(service.bootstrap, service.input, records[third:])
    second = service.worker("--guarantee", guarantee)
    want = keras_outputs(service)
    got, repeats = dedupe(service.outputs(len(want), isolation))
    assert_scored_like_keras(got, want)
    if guarantee == "exactly-once":
        assert repeats == 0
    assert second.metric("lstm_scorer_restored_records_total") > 0
    assert second.terminate() == 0


def test_a_successor_aborts_the_transaction_a_killed_worker_left_open(
    service: Deployment,
) -> None:
    """Exactly-once, a worker killed mid-transaction: its open transaction hides every output
    after it from read_committed readers until the broker aborts it. Here the broker would wait
    ten minutes (the dead worker's transaction timeout); the worker that takes its partitions
    over fences its transactional id, so the outputs are there well before."""
    records = interleaved_stream(np.random.default_rng(5), 1200)
    never_commits = {"KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "600000"}
    doomed = service.worker("--guarantee", "exactly-once", "--commit-interval-ms", "300000",
                            env=never_commits)  # fmt: skip
    doomed.wait_ready()
    survivor = service.worker("--guarantee", "exactly-once")
    survivor.wait_ready()
    wait_for(lambda: survivor.metric("lstm_scorer_assigned_partitions") > 0 or None, 60,
             "the partitions shared")  # fmt: skip
    produce(service.bootstrap, service.input, records)
    service.progress(len(records) // 2, "read_uncommitted")
    wait_for(lambda: doomed.metric("lstm_scorer_outputs_produced_total") > 0 or None, 60,
             "outputs in the doomed worker's open transaction")  # fmt: skip
    doomed.kill()
    want = keras_outputs(service)
    # Read until quiet within the harness's 120 s: the broker alone would take 600 s.
    got, repeats = dedupe(service.outputs(len(want)))
    assert repeats == 0
    assert_scored_like_keras(got, want)
    [fenced] = survivor.events("departed_writer_fenced")
    assert fenced["transactional_id"] == f"{service.group}-w0"
    assert survivor.terminate() == 0


def test_bad_records_go_to_the_dead_letter_topic(service: Deployment) -> None:
    good = interleaved_stream(np.random.default_rng(4), 100)
    service.worker()
    producer = Producer({"bootstrap.servers": service.bootstrap, "partitioner": "murmur2_random"})
    bad = BAD_INPUTS
    for i, (key, value) in enumerate(good):
        producer.produce(service.input, value, key.encode())
        if i % 3 == 0 and i // 3 < len(bad):
            case = bad[i // 3]
            producer.produce(service.input, case.value, case.key)
    for case in bad[len(good) // 3 + 1 :]:
        producer.produce(service.input, case.value, case.key)
    assert producer.flush(30) == 0
    dlq = reader(service.bootstrap, service.dlq, 1)
    try:
        msgs = consume_until(dlq, lambda got: len(got) >= len(bad), 120)
    finally:
        dlq.close()
    assert len(msgs) == len(bad)
    reasons = {
        (m.key(), m.value()): {k: v for k, v in _header_pairs(m) if isinstance(v, bytes)}
        for m in msgs
    }
    for case in bad:
        headers = reasons[(case.key, case.value)]
        assert headers["error"].decode() == case.reason, case.name
        assert headers["source_topic"].decode() == service.input
        assert int(headers["source_offset"]) >= 0 and headers["error_detail"]
    # The good records' outputs are all there, scored as if the bad ones had never come.
    want = keras_outputs(service, skip_rejected=True)
    got, repeats = dedupe(service.outputs(len(want)))
    assert_scored_like_keras(got, want)
    assert repeats == 0


def test_an_idle_sequence_is_evicted_with_a_final_record_and_a_tombstone(
    service: Deployment,
) -> None:
    w = service.worker("--idle-timeout-s", "2")
    records: list[Record] = [("idle-1", encode_input(features=[[0.1, 0.2, 0.3]] * 3))]
    produce(service.bootstrap, service.input, records)
    outs = service.outputs(4, timeout_s=60)  # one per sample of the chunk, then the final
    assert [(o.step, o.final, o.reason) for o in outs] == [
        (1, False, None),
        (2, False, None),
        (3, False, None),
        (3, True, "idle_timeout"),
    ]
    assert outs[2].outputs == outs[3].outputs
    changelog = reader(service.bootstrap, f"{service.group}-state-changelog", PARTITIONS)
    try:
        msgs = consume_until(
            changelog, lambda got: any(m.value() is None for m in got), timeout_s=60
        )
    finally:
        changelog.close()
    assert {m.key() for m in msgs} == {b"idle-1"}
    assert msgs[-1].value() is None  # the tombstone comes last
    assert w.metric("lstm_scorer_sequences_ended_total") >= 1


def test_state_of_a_model_version_no_longer_served_ends_with_a_final(
    service: Deployment, tmp_path: Path
) -> None:
    first = service.worker()
    produce(service.bootstrap, service.input, [("dev-1", encode_input(features=[1.0, 2.0, 3.0]))])
    assert service.outputs(1)[0].step == 1
    assert first.terminate() == 0  # a clean stop commits the state first
    other = save_user_model(tmp_path / "other.keras", seed=4)
    second = service.worker(model=other)  # a single file: the first version is gone
    second.wait_ready()
    assert second.metric("lstm_scorer_restored_states_discarded_total") == 1
    produce(service.bootstrap, service.input, [("dev-1", encode_input(features=[1.0, 2.0, 3.0]))])
    outs = service.outputs(3)
    assert len(outs) == 3
    scored, final, fresh = outs
    # Never silent: the sequence ends with its last output, under the version that made it.
    assert (final.final, final.reason, final.step) == (True, "model_unavailable", 1)
    assert final.model_version == scored.model_version
    assert final.probability == scored.probability
    assert fresh.step == 1 and fresh.model_version != scored.model_version  # a new sequence
    assert second.terminate() == 0


def test_refuses_to_start_without_its_input_topic(service: Deployment) -> None:
    service.input = "no-such-topic-" + service.group
    w = service.worker()
    assert w.proc is not None
    assert w.proc.wait(120) == 3
    assert b"does not exist" in w.log_path.read_bytes()


def test_a_ready_worker_has_not_loaded_tensorflow(service: Deployment) -> None:
    """Read from the live process after it is ready: TensorFlow's shared libraries are mapped
    into any process that imports TensorFlow (Keras 3 imports it too, as its backend)."""
    w = service.worker()
    w.wait_ready()
    assert w.proc is not None
    mapped = Path(f"/proc/{w.proc.pid}/maps").read_text()
    assert "tensorflow" not in mapped
    assert "h5py" in mapped  # the model file was read, and the check sees the mapped libraries
    assert w.terminate() == 0


def _header_pairs(msg: Message) -> list[tuple[str, object]]:
    raw = msg.headers() or []
    return list(raw.items() if isinstance(raw, dict) else raw)
