"""Model rollout on a real broker with real workers: sequences finish on the version they
started on, across a SIGHUP and a rebalance, compared with Keras `model(x)` on every prefix of
the model each sequence started on. Outputs are read until the topic is quiet."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from consumer.codecs.inputs import InputRecord, encode_input
from consumer.codecs.outputs import OutputRecord
from consumer.model import load_plan
from producer_sim.cluster.worker import Worker
from tests.kafka_harness import NewTopicFactory, QuietReader
from tests.keras_oracle import Ident, expected_outputs
from tests.service_harness import (
    Deployment,
    Record,
    decoded,
    produce,
    save_user_model,
    topic_inputs,
)

PARTITIONS = 4
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two versions of the user's model: same architecture, other weights."""
    base = tmp_path_factory.mktemp("versions")
    return save_user_model(base / "v1.keras", seed=3), save_user_model(base / "v2.keras", seed=8)


@pytest.fixture
def store(tmp_path: Path, versions: tuple[Path, Path]) -> Path:
    """A model store: both files, `current` pointing at the first."""
    directory = tmp_path / "models"
    directory.mkdir()
    for path in versions:
        (directory / path.name).write_bytes(path.read_bytes())
    (directory / "broken.keras").write_bytes(b"not a model")
    (directory / "current").symlink_to("v1.keras")
    return directory


@pytest.fixture
def rollout(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    unique_group: Callable[[], str],
    store: Path,
    tmp_path: Path,
) -> Iterator[Deployment]:
    svc = Deployment(
        kafka_bootstrap,
        new_topic(PARTITIONS),
        new_topic(PARTITIONS),
        new_topic(1),
        unique_group(),
        store,
        tmp_path,
    )
    yield svc
    svc.stop_all()


def point_current(store: Path, name: str) -> None:
    pointer = store / "current"
    pointer.unlink()
    pointer.symlink_to(name)


def sighup(worker: Worker) -> None:
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGHUP)


def samples(
    rng: np.random.Generator, keys: list[str], n: int, *, end: bool = False
) -> list[Record]:
    """`n` one-sample records per key, interleaved; with `end`, the last one ends the sequence."""
    out = []
    for i in range(n):
        for key in keys:
            row = rng.normal(size=3).round(3).tolist()
            out.append((key, encode_input(features=row, end=end and i == n - 1)))
    return out


def input_records(svc: Deployment) -> list[InputRecord]:
    return topic_inputs(svc.bootstrap, svc.input, PARTITIONS)


def identified(outputs: list[OutputRecord]) -> dict[Ident, list[OutputRecord]]:
    """Outputs by identity (key, partition, offset, step, final), every copy kept."""
    got: dict[Ident, list[OutputRecord]] = {}
    for o in outputs:
        assert o.partition is not None and o.offset is not None
        got.setdefault((o.sequence_id, o.partition, o.offset, o.step, o.final), []).append(o)
    return got


def all_outputs(svc: Deployment, at_least: int) -> dict[Ident, list[OutputRecord]]:
    return identified(svc.outputs(at_least))


def check(
    got: dict[Ident, list[OutputRecord]],
    want: dict[Ident, tuple[OutputRecord, str]],
) -> None:
    """Every expected output, no other, each copy equal to Keras and under the right version."""
    assert sorted(set(got) - set(want)) == [], "outputs nobody expected"
    assert sorted(set(want) - set(got)) == [], "outputs missing"
    for ident, copies in got.items():
        expected, version = want[ident]
        for o in copies:
            assert o.model_version == version, (ident, o.model_version, version)
            assert o.reason == expected.reason, ident
            assert o.probability is not None and expected.probability is not None
            assert abs(o.probability - expected.probability) <= TOLERANCE, (ident, o, expected)


GUARANTEES = pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])


@GUARANTEES
def test_a_rollout_by_sighup_lets_started_sequences_finish_on_their_version(
    rollout: Deployment, versions: tuple[Path, Path], guarantee: str
) -> None:
    svc, store = rollout, rollout.model
    v1, v2 = (load_plan(p).version for p in versions)
    rng = np.random.default_rng(5)
    flags = ("--model-poll-s", "0", "--guarantee", guarantee)
    workers = [svc.worker(*flags), svc.worker(*flags)]
    for w in workers:
        w.wait_ready()
    old = [f"old-{i}" for i in range(24)]  # start on v1; half end before the rebalance
    ending, lasting = old[:12], old[12:]
    new = [f"new-{i}" for i in range(12)]  # start after the rollout
    produce(svc.bootstrap, svc.input, samples(rng, old, 3))
    svc.progress(len(old) * 3)

    # A broken candidate is refused; v1 keeps serving.
    point_current(store, "broken.keras")
    for w in workers:
        sighup(w)
        assert "broken.keras" in w.wait_event("model_refused", 60)["error"]
    point_current(store, "v2.keras")
    for w in workers:
        sighup(w)
        event = w.wait_event("model_switched", 60)
        assert (event["model_version"], event["previous"]) == (v2, v1)
    produce(svc.bootstrap, svc.input, samples(rng, old, 2))
    produce(svc.bootstrap, svc.input, samples(rng, ending, 1, end=True))
    produce(svc.bootstrap, svc.input, samples(rng, new + ending, 2))
    svc.progress(len(old) * 5 + len(ending) + (len(new) + len(ending)) * 2)

    # A third worker joins while v1 still holds sequences: partitions move to a worker that
    # never served v1, which loads it from the store for the sequences it restores.
    joined = svc.worker(*flags, name="late")
    joined.wait_ready()
    assert joined.wait_event("model_version_loaded", 60)["model_version"] == v1
    produce(svc.bootstrap, svc.input, samples(rng, lasting, 2, end=True))
    produce(svc.bootstrap, svc.input, samples(rng, new, 1, end=True))

    records = input_records(svc)
    by_model = {v1: expected_outputs(versions[0], records),
                v2: expected_outputs(versions[1], records)}  # fmt: skip
    ended_at = {r.key: r.offset for r in records if r.end and r.key in ending}
    want: dict[Ident, tuple[OutputRecord, str]] = {}
    for ident in by_model[v1]:
        key, _, offset, _, _ = ident
        started_on_v1 = key in lasting or (key in ending and offset <= ended_at[key])
        version = v1 if started_on_v1 else v2
        want[ident] = (by_model[version][ident], version)
    check(all_outputs(svc, len(want)), want)
    for w in [*workers, joined]:
        assert w.alive(), f"{w.log_path.name} exited"
        assert len(w.events("starting")) == 1  # served through the rollout without a restart
    assert all(w.metric("lstm_scorer_model_reloads_total") >= 1 for w in workers)


@GUARANTEES
def test_restart_policy_ends_running_sequences_with_model_changed(
    rollout: Deployment, versions: tuple[Path, Path], guarantee: str
) -> None:
    svc, store = rollout, rollout.model
    v1, v2 = (load_plan(p).version for p in versions)
    rng = np.random.default_rng(6)
    w = svc.worker("--on-model-change", "restart", "--model-poll-s", "1", "--guarantee", guarantee)
    w.wait_ready()
    keys = [f"k{i}" for i in range(10)]
    produce(svc.bootstrap, svc.input, samples(rng, keys, 2))
    svc.progress(len(keys) * 2)
    before = {(r.partition, r.offset) for r in input_records(svc)}
    point_current(store, "v2.keras")  # noticed by polling, no signal
    assert w.wait_event("model_switched", 60)["sequences_ended"] == len(keys)
    produce(svc.bootstrap, svc.input, samples(rng, keys, 2, end=True))

    records = input_records(svc)
    got = svc.outputs(len(keys) * 5)
    first = [r for r in records if (r.partition, r.offset) in before]
    then = [r for r in records if (r.partition, r.offset) not in before]
    by_model = {v1: expected_outputs(versions[0], first), v2: expected_outputs(versions[1], then)}
    finals = [o for o in got if o.reason == "model_changed"]
    assert sorted(o.sequence_id for o in finals) == sorted(keys)
    for o in finals:  # each repeats its sequence's last output, under v1
        last = by_model[v1][(o.sequence_id, o.partition or 0, o.offset or 0, 2, False)]
        assert o.model_version == v1 and o.step == 2
        assert o.probability is not None and last.probability is not None
        assert abs(o.probability - last.probability) <= TOLERANCE
    want = {ident: (out, version) for version, outs in by_model.items()
            for ident, out in outs.items()}  # fmt: skip
    check(identified([o for o in got if o.reason != "model_changed"]), want)
    assert w.alive() and len(w.events("starting")) == 1


@GUARANTEES
def test_shadow_scoring_writes_the_candidates_outputs_beside_the_live_ones(
    rollout: Deployment, versions: tuple[Path, Path], new_topic: NewTopicFactory, guarantee: str
) -> None:
    svc = rollout
    v1, v2 = (load_plan(p).version for p in versions)
    shadow_topic = new_topic(PARTITIONS)
    w = svc.worker("--guarantee", guarantee, "--shadow-model", str(versions[1]),
                   "--shadow-topic", shadow_topic)  # fmt: skip
    w.wait_ready()
    rng = np.random.default_rng(7)
    keys = [f"s{i}" for i in range(16)]
    produce(svc.bootstrap, svc.input, samples(rng, keys, 3, end=True))
    records = input_records(svc)
    live = svc.outputs(len(keys) * 3)
    assert {o.model_version for o in live} == {v1}
    quiet = QuietReader(svc.bootstrap, shadow_topic, PARTITIONS)
    try:
        shadow = decoded(quiet.read_until_quiet(2.0, 60.0, lambda: len(quiet.received) >= 48))
    finally:
        quiet.close()
    candidate = expected_outputs(versions[1], records)
    check(identified(shadow), {ident: (out, v2) for ident, out in candidate.items()})
    assert w.metric("lstm_scorer_shadow_compared_outputs_total") == len(keys) * 3
    agreeing = w.metric("lstm_scorer_shadow_agreeing_outputs_total")
    assert 0 <= agreeing <= len(keys) * 3
    assert w.metric("lstm_scorer_shadow_abs_difference_total") > 0  # two different models
