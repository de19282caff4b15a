"""Restoring from a changelog on a real broker, where a departed writer's transaction decides
where a `read_committed` reader's partition ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer

from consumer.codecs import changelog as changelog_codec
from consumer.config import Settings
from consumer.engine.state_table import StateTable
from consumer.kafka_clients import restore_consumer_config
from consumer.restore import Restorer, RestoreStats, TableTarget
from tests.kafka_harness import NewTopicFactory, unique_name

VERSION = "v1"
STATE = (3, 1)


def _state(key: str, step: int) -> tuple[bytes, bytes]:
    table = StateTable(STATE, 2)
    slot = table.allocate(key, 0)
    table.steps[slot] = step
    table.states[0][slot] = np.float32(step)
    return key.encode(), changelog_codec.encode_state(table, key, VERSION)


def test_a_restore_ends_when_the_last_writers_open_transaction_is_aborted_meanwhile(
    kafka_bootstrap: str, new_topic: NewTopicFactory
) -> None:
    # The worker that wrote the partition died inside a transaction; the new owner starts its
    # restore, then fences the departed writer, which aborts that transaction and appends a
    # marker. The restore's end had been asked before the marker existed: the reader's end of
    # partition came past it and the restore waited on, for records that never came.
    changelog = new_topic(1, {"cleanup.policy": "compact"})
    writer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": unique_name("departed")}
    )
    writer.init_transactions(30)
    writer.begin_transaction()
    for key, step in (("a", 1), ("b", 1), ("a", 2)):
        writer.produce(changelog, _state(key, step)[1], key.encode(), partition=0)
    writer.commit_transaction(30)
    writer.begin_transaction()
    for key, step in (("a", 3), ("b", 2)):
        writer.produce(changelog, _state(key, step)[1], key.encode(), partition=0)
    writer.flush(30)  # written, not committed: the transaction the writer died in

    settings = Settings(
        model_path=Path("m.keras"),
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_name("restore"),
        guarantee="exactly-once",
    )
    reader = Consumer(restore_consumer_config(settings))
    table = StateTable(STATE, 2)
    restorer = Restorer(reader, changelog, target=TableTarget(table, VERSION), timeout_s=20.0)
    try:
        restorer.add([0])  # its end asked now, the transaction still open
        writer.abort_transaction(30)  # the fence's abort, while the restore runs
        stats: RestoreStats | None = None
        while stats is None:
            _, stats = restorer.step(0.5)
    finally:
        reader.close()
    assert stats.records == 3
    steps = {key: int(table.steps[slot]) for key in ("a", "b") if (slot := table.slot_of(key))
             is not None}  # fmt: skip
    assert steps == {"a": 2, "b": 1}
