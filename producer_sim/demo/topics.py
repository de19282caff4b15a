"""The demo's topics: the previous run's are deleted, so its outputs and saved states cannot mix
with this run's (the same seed gives the same keys), and the input topic is made afresh."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

_WAIT_S = 60.0


class TopicSetupError(RuntimeError):
    pass


def _existing(admin: AdminClient) -> set[str]:
    return set(admin.list_topics(timeout=15).topics)


def recreate(bootstrap: str, delete: Sequence[str], create: str, partitions: int) -> list[str]:
    """Deletes the topics of `delete` that exist, then creates `create`; returns those deleted."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    old = sorted(_existing(admin) & set(delete))
    if old:
        for future in admin.delete_topics(old, operation_timeout=30).values():
            future.result(timeout=60)
    deadline = time.monotonic() + _WAIT_S
    # Deletion finishes in the background; a name being deleted cannot be created yet.
    while True:
        try:
            new = NewTopic(create, num_partitions=partitions, replication_factor=1)
            admin.create_topics([new])[create].result(timeout=30)
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise TopicSetupError(f"cannot create topic {create}: {exc}") from None
            time.sleep(0.5)
    while True:
        meta = admin.list_topics(create, timeout=15).topics.get(create)
        leaders = [] if meta is None or meta.error is not None else meta.partitions.values()
        if len(leaders) == partitions and all(p.leader >= 0 for p in leaders):
            return old
        if time.monotonic() > deadline:
            raise TopicSetupError(f"topic {create} has no leader for every partition")
        time.sleep(0.2)
