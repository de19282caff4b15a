"""Faults the reliability scenarios found, shown without a broker (Kafka clients are fakes)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consumer import kafka_clients
from consumer.config import Settings


def _metadata(topics: Mapping[str, int]) -> SimpleNamespace:
    return SimpleNamespace(
        topics={
            name: SimpleNamespace(partitions=dict.fromkeys(range(n)), error=None)
            for name, n in topics.items()
        }
    )


def _done(value: object) -> Future[object]:
    future: Future[object] = Future()
    future.set_result(value)
    return future


class LaggingMetadataAdmin:
    """Topics it creates appear in its metadata only `lag` listings later, as on a busy broker."""

    def __init__(self, existing: Mapping[str, int], lag: int) -> None:
        self.topics = dict(existing)
        self.pending: dict[str, int] = {}
        self.lag = lag
        self.listings = 0

    def list_topics(self, timeout: float) -> SimpleNamespace:
        self.listings += 1
        if self.pending and self.lag == 0:
            self.topics.update(self.pending)
            self.pending.clear()
        self.lag = max(0, self.lag - 1)
        return _metadata(self.topics)

    def create_topics(self, new: list[Any], operation_timeout: float) -> dict[str, Future[object]]:
        for t in new:
            self.pending[t.topic] = t.num_partitions
        return {t.topic: _done(None) for t in new}

    def describe_configs(self, resources: list[Any]) -> dict[Any, Future[object]]:
        policy = SimpleNamespace(value="compact")
        return {r: _done({"cleanup.policy": policy}) for r in resources}


def test_topics_created_at_start_are_awaited_until_metadata_lists_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two workers starting together: the changelog topic exists (or was just created) but the
    # next metadata listing does not show it yet. Start-up used to fail with a KeyError.
    admin = LaggingMetadataAdmin({"samples": 6}, lag=2)
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf: admin)
    settings = Settings(model_path=Path("m.keras"), create_topics=True, startup_timeout_s=5)
    topology = kafka_clients.prepare_topics(settings)
    assert topology.input_partitions == 6
    assert admin.listings >= 3  # it listed again until the new topics showed up


def test_topics_that_never_show_up_fail_start_up_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = LaggingMetadataAdmin({"samples": 6}, lag=10**9)
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf: admin)
    settings = Settings(model_path=Path("m.keras"), create_topics=True, startup_timeout_s=0.3)
    with pytest.raises(kafka_clients.StartupError, match="not in the broker's metadata"):
        kafka_clients.prepare_topics(settings)
