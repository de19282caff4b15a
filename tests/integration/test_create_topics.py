"""`python -m consumer create-topics`: every topic a group needs, on a real broker, idempotent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource

from tests.kafka_harness import delete_topics, unique_name


@pytest.fixture
def names(kafka_admin: AdminClient) -> Iterator[dict[str, str]]:
    prefix = unique_name("ct")
    topics = {
        "input": f"{prefix}.samples",
        "output": f"{prefix}.probabilities",
        "dlq": f"{prefix}.dlq",
        "group": f"{prefix}-g",
    }
    yield topics
    made = [topics["input"], topics["output"], topics["dlq"], f"{topics['group']}-state-changelog"]
    listed = kafka_admin.list_topics(timeout=10).topics
    if existing := [t for t in made if t in listed]:
        delete_topics(kafka_admin, existing)


def create(
    bootstrap: str, names: dict[str, str], partitions: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer", "create-topics", "--input-partitions", str(partitions),
         "--model", "unused.keras", "--bootstrap-servers", bootstrap,
         "--input-topic", names["input"], "--output-topic", names["output"],
         "--dlq-topic", names["dlq"], "--group-id", names["group"], "--log-format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_topic_is_created_once_and_again_is_a_no_op(
    kafka_bootstrap: str, kafka_admin: AdminClient, names: dict[str, str]
) -> None:
    first = create(kafka_bootstrap, names, 5)
    assert first.returncode == 0, first.stderr
    assert '"input_created":true' in first.stderr
    listed = kafka_admin.list_topics(timeout=10).topics
    changelog = f"{names['group']}-state-changelog"
    parts = {t: len(listed[t].partitions) for t in (names["input"], names["output"], changelog)}
    assert set(parts.values()) == {5}
    assert len(listed[names["dlq"]].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    config = kafka_admin.describe_configs([resource])[resource].result()
    assert "compact" in config["cleanup.policy"].value
    again = create(kafka_bootstrap, names, 9)  # an existing input keeps its partitions
    assert again.returncode == 0, again.stderr
    assert '"input_created":false' in again.stderr
    assert len(kafka_admin.list_topics(timeout=10).topics[names["input"]].partitions) == 5


def test_an_unreachable_broker_exits_3_naming_it(names: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "create-topics", "--input-partitions", "2",
         "--model", "unused.keras", "--bootstrap-servers", "127.0.0.1:1",
         "--startup-timeout-s", "2", "--input-topic", names["input"]],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 3
    assert "unreachable at 127.0.0.1:1" in result.stderr
