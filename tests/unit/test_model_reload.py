"""Noticing a new model version, and refusing a bad one while the served one keeps serving."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from consumer.metrics import Metrics
from consumer.model.step import BackendName, StepFunction
from consumer.model.store import ModelStore
from consumer.model_reload import ModelReloader
from tests.prefix_sum_step import PrefixSumStep
from tests.unit.model.test_store import VersionedStep, content


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def load(path: Path, _backend: BackendName) -> StepFunction:
    text = content(path)
    if text.startswith("features4:"):
        step = VersionedStep(text)
        step._n_features = 4
        return step
    if text == "raises":
        raise RuntimeError("h5py: truncated file")
    return VersionedStep(text)


def setup(tmp_path: Path, poll_s: float = 5.0) -> tuple[ModelReloader, Clock, CollectorRegistry]:
    (tmp_path / "v1.keras").write_text("v1")
    (tmp_path / "current").write_text("v1.keras")
    registry = CollectorRegistry()
    clock = Clock()
    store = ModelStore(tmp_path, load=load, version_of=content)
    reloader = ModelReloader(store, Metrics(registry).rollout, poll_s=poll_s, clock=clock)
    return reloader, clock, registry


def point_at(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    (tmp_path / "current").write_text(name)


def reloads(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("lstm_scorer_model_reloads_total", {"outcome": outcome}) or 0


def test_a_changed_pointer_is_picked_up_at_the_next_poll(tmp_path: Path) -> None:
    reloader, clock, registry = setup(tmp_path)
    served = VersionedStep("v1")
    point_at(tmp_path, "v2.keras", "v2")
    assert reloader.candidate(served) is None  # not yet time to look
    clock.now = 5.0
    found = reloader.candidate(served)
    assert found is not None and found.version == "v2"
    assert reloads(registry, "loaded") == 1
    clock.now = 10.0
    assert reloader.candidate(found) is None  # the same pointer is not loaded twice


def test_sighup_looks_at_once_even_without_polling(tmp_path: Path) -> None:
    reloader, _clock, registry = setup(tmp_path, poll_s=0)
    served = VersionedStep("v1")
    reloader.request()
    assert reloader.candidate(served) is None and reloads(registry, "unchanged") == 1
    point_at(tmp_path, "v2.keras", "v2")
    assert reloader.candidate(served) is None  # polling is off: only a signal looks
    reloader.request()
    found = reloader.candidate(served)
    assert found is not None and found.version == "v2"


def test_a_candidate_that_fails_to_load_is_refused_once(tmp_path: Path) -> None:
    reloader, clock, registry = setup(tmp_path)
    served = VersionedStep("v1")
    point_at(tmp_path, "bad.keras", "raises")
    clock.now = 5.0
    assert reloader.candidate(served) is None and reloads(registry, "refused") == 1
    clock.now = 10.0
    assert reloader.candidate(served) is None and reloads(registry, "refused") == 1
    point_at(tmp_path, "v2.keras", "v2")  # fixed: the next poll loads it
    clock.now = 15.0
    assert reloader.candidate(served) is not None


def test_a_candidate_reading_other_features_is_refused(tmp_path: Path) -> None:
    reloader, _clock, registry = setup(tmp_path)
    point_at(tmp_path, "wide.keras", "features4:v2")
    reloader.request()
    assert reloader.candidate(PrefixSumStep()) is None
    assert reloads(registry, "refused") == 1
