"""Client configurations: what the service sets itself."""

from __future__ import annotations

from pathlib import Path

from consumer.config import Settings
from consumer.kafka_clients import consumer_config, producer_config


def _ignore(*_: object) -> None:
    pass


def test_the_instance_id_is_the_static_group_member_and_names_the_transactional_id() -> None:
    s = Settings(model_path=Path("m.keras"), guarantee="exactly-once", instance_id="pod-a")
    # A restart within the session timeout keeps the member's partitions: no rebalance.
    assert consumer_config(s, _ignore)["group.instance.id"] == "pod-a"
    assert producer_config(s, _ignore, _ignore)["transactional.id"] == "lstm-scorer-pod-a"
