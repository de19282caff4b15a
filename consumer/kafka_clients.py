"""Kafka clients configured the way the service needs them, and the start-up topic checks.

The service owns its commits: auto-commit and the automatic offset store are off, offsets are
committed only after outputs and state are delivered. Producers use `murmur2_random`, so keys land
on the partitions where Java clients put them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._metadata import ClusterMetadata, TopicMetadata
from confluent_kafka.cimpl import NewTopic

from consumer.access_rights import (
    answered,
    describe_topics,
    missing_group_rights,
    missing_topic_rights,
    missing_transactional_rights,
    refusal,
    topic_rights_needed,
)
from consumer.config import Settings
from consumer.departed_writers import DepartedWriters
from consumer.departed_writers import for_settings as departed_writers_of

log = logging.getLogger(__name__)
# Beyond the commit interval, before the broker aborts a transaction (see transaction_timeout_ms).
TRANSACTION_MARGIN_MS = 10_000
# Fencing a departed worker's transactional id waits for the broker to abort its transaction.
FENCE_TIMEOUT_S = 10.0
# How long librdkafka holds a partition's next fetch once its pre-fetch queue passed its threshold
# (1,000 ms by default): a reader that empties the queue faster than that waits on itself.
FETCH_QUEUE_BACKOFF_MS = 10


# Called with the broker's answer to an offset commit: an error or None, and the offsets.
CommitAnswers = Callable[[KafkaError | None, list[TopicPartition]], None]


class StartupError(RuntimeError):
    """The service cannot start: the message says what is wrong and what to do."""


def consumer_config(
    settings: Settings,
    on_error: Callable[[KafkaError], None],
    on_commit: CommitAnswers | None = None,
) -> dict[str, object]:
    """The group consumer's configuration; `on_commit` gets the broker's answers to offset
    commits (asynchronous ones above all), from the consumer's poll."""
    conf: dict[str, object] = {
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": min(100, max(1, settings.max_wait_ms)),
        # A worker drains a backlog's pre-fetched records faster than one a second: with the
        # default back-off it sat idle most of each second (one consumer alone: 200,000
        # records/s; 1.4M to 1.9M with it).
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        **settings.consumer_properties(),
        "group.id": settings.group_id,
        # Static membership: a worker restarted within the session timeout keeps its partitions.
        "group.instance.id": settings.instance_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "error_cb": on_error,
    }
    if on_commit is not None:
        conf["on_commit"] = on_commit
    if settings.guarantee == "exactly-once":
        conf["isolation.level"] = "read_committed"
    return conf


def producer_config(
    settings: Settings,
    on_error: Callable[[KafkaError], None],
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> dict[str, object]:
    conf: dict[str, object] = {
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        **settings.producer_properties(),
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        # Successful deliveries need no callback; a failed one must stop the next commit.
        "delivery.report.only.error": True,
        "on_delivery": on_delivery,
        "error_cb": on_error,
    }
    if settings.guarantee == "exactly-once":
        conf["transactional.id"] = settings.transactional_id
        conf.setdefault("transaction.timeout.ms", transaction_timeout_ms(settings))
    return conf


def transaction_timeout_ms(settings: Settings) -> int:
    """The producer's transaction timeout unless the user sets one. A worker that dies leaves its
    transaction open until the broker aborts it at this timeout, and until then read_committed
    readers of the partitions it wrote (downstream consumers, the next restore) see nothing past
    it, the new owner's outputs included: so as short as the commit interval (the transaction's
    length) allows, with room for a checkpoint that waits on a broker moving (Kafka Streams uses
    10 s for the same reason)."""
    return settings.commit_interval_ms + TRANSACTION_MARGIN_MS


def restore_consumer_config(settings: Settings) -> dict[str, object]:
    """A consumer that reads changelog partitions by assignment: it never joins a group nor
    commits. librdkafka still looks up the coordinator of its group.id, so it is the worker's
    own group, which the worker may read: under ACLs any other group would need a right of its
    own (and be refused on every lookup without it)."""
    conf: dict[str, object] = {
        **settings.consumer_properties(),
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 64 * 1024 * 1024,
        # Larger fetches held back the first records (16 MiB a partition: 0.3 s before any),
        # smaller ones cost round trips.
        "max.partition.fetch.bytes": 2 * 1024 * 1024,
        # A restore drains the pre-fetch queue faster than one fetch fills it: by default, once
        # the queue passed its threshold, the next fetch waited a second, and the reader with it.
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        # A fetch the broker holds for want of records (a partition read to its end) delays
        # the watermark asks queued behind it on the connection (500 ms by default).
        "fetch.wait.max.ms": 20,
    }
    if settings.guarantee == "exactly-once":
        conf["isolation.level"] = "read_committed"
    return conf


def new_consumer(
    settings: Settings,
    on_error: Callable[[KafkaError], None],
    on_commit: CommitAnswers | None = None,
) -> Consumer:
    return Consumer(consumer_config(settings, on_error, on_commit))


def new_producer(
    settings: Settings,
    on_error: Callable[[KafkaError], None],
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> Producer:
    return Producer(producer_config(settings, on_error, on_delivery))


class KafkaClients:
    """The three clients a worker makes, as the settings configure them. The runner is handed one
    of these (tests hand it broker-free stand-ins); it makes a new group consumer when fenced and
    a new producer when the old one cannot go on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def group_consumer(
        self,
        on_error: Callable[[KafkaError], None],
        on_commit: CommitAnswers,
    ) -> Consumer:
        return new_consumer(self.settings, on_error, on_commit)

    def changelog_reader(self) -> Consumer:
        return Consumer(restore_consumer_config(self.settings))

    def departed_writers(self) -> DepartedWriters:
        return departed_writers_of(self.settings, FENCE_TIMEOUT_S)

    def producer(
        self,
        on_error: Callable[[KafkaError], None],
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> Producer:
        return new_producer(self.settings, on_error, on_delivery)


@dataclass(frozen=True, slots=True)
class Topology:
    input_partitions: int


def create_input_topic(settings: Settings, partitions: int) -> bool:
    """Create the input topic with `partitions` partitions unless it exists (then its partition
    count stays as it is). Returns whether it was created."""
    errors: list[KafkaError] = []
    admin = AdminClient(
        dict[str, str | int | float | bool](settings.admin_properties()), error_cb=errors.append
    )
    cluster = _reach(admin, errors, settings)
    if settings.input_topic in cluster.topics:
        return False
    replicas = settings.replication_factor or min(3, len(cluster.brokers))
    in_sync = str(settings.min_insync_replicas or min(2, replicas))
    topic = NewTopic(settings.input_topic, partitions, replicas,
                     config={"min.insync.replicas": in_sync})  # fmt: skip
    _create(admin, [topic], settings.startup_timeout_s)
    _listed(admin, [settings.input_topic], settings.startup_timeout_s)
    return True


def prepare_topics(settings: Settings) -> Topology:
    """Check the broker, the worker's rights and the topics, creating the missing topics if
    asked to. Every refusal names what is missing: a topic, a right, a setting."""
    errors: list[KafkaError] = []
    admin = AdminClient(
        dict[str, str | int | float | bool](settings.admin_properties()), error_cb=errors.append
    )
    timeout = settings.startup_timeout_s
    cluster = _reach(admin, errors, settings)
    needed = topic_rights_needed(settings)
    access = describe_topics(admin, list(needed), timeout)
    missing_rights = missing_topic_rights(access, needed)
    missing_rights += missing_group_rights(settings, timeout)
    missing_rights += missing_transactional_rights(settings, timeout)
    if missing_rights:
        raise StartupError(refusal(missing_rights))
    if not access[settings.input_topic].exists:
        raise StartupError(
            f"input topic {settings.input_topic!r} does not exist; create it (its partition "
            "count is the service's parallelism) before starting workers"
        )
    n = len(_listed(admin, [settings.input_topic], timeout)[settings.input_topic].partitions)
    replicas = settings.replication_factor or min(3, len(cluster.brokers))
    in_sync = str(settings.min_insync_replicas or min(2, replicas))
    wanted = {
        settings.output_topic: NewTopic(settings.output_topic, n, replicas),
        settings.dlq_topic: NewTopic(settings.dlq_topic, 1, replicas),
        settings.changelog_topic: NewTopic(
            settings.changelog_topic,
            n,
            replicas,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
    }
    if settings.shadow_topic:
        wanted[settings.shadow_topic] = NewTopic(settings.shadow_topic, n, replicas)
    for topic in wanted.values():
        topic.config = {**(topic.config or {}), "min.insync.replicas": in_sync}
    missing = [t for name, t in wanted.items() if not access[name].exists]
    if missing and not settings.create_topics:
        names = ", ".join(t.topic for t in missing)
        raise StartupError(f"missing topic(s): {names}; create them or pass --create-topics")
    if missing:
        _create(admin, missing, timeout)
        created = [t.topic for t in missing]
        # Rights on a topic can differ from a prefix ACL's; a new topic is checked like the rest.
        access = describe_topics(admin, created, timeout)
        missing_rights = missing_topic_rights(access, {t: needed[t] for t in created})
        if missing_rights:
            raise StartupError(refusal(missing_rights))
    # Listed now, not taken from the first listing: another worker starting at the same time may
    # have created a topic since, which the rights check saw and that listing did not.
    topics = _listed(admin, list(wanted), timeout)
    changelog_partitions = len(topics[settings.changelog_topic].partitions)
    if changelog_partitions != n:
        raise StartupError(
            f"changelog topic {settings.changelog_topic!r} has {changelog_partitions} partitions "
            f"but input topic {settings.input_topic!r} has {n}; they must match (changelog "
            "partition p holds the state of input partition p). Refusing to run."
        )
    _require_compacted(admin, settings.changelog_topic, timeout)
    return Topology(input_partitions=n)


def _reach(admin: AdminClient, errors: list[KafkaError], settings: Settings) -> ClusterMetadata:
    """The cluster's metadata. Refused credentials fail at once, with their own message: unlike
    an unreachable broker they do not get better by waiting out the start-up timeout."""
    timeout = settings.startup_timeout_s
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=max(0.001, min(1.0, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # hands the client's errors to error_cb
            refused = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
            if refused:
                raise StartupError(
                    f"Kafka at {settings.bootstrap_servers} refused the credentials "
                    f"({refused[-1].str()}); check KAFKA_SECURITY_PROTOCOL, "
                    "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                ) from exc
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"Kafka is unreachable at {settings.bootstrap_servers} within {timeout:g} s "
                    f"({exc.args[0]}); check --bootstrap-servers and the KAFKA_* security "
                    "settings"
                ) from exc


_CREATE_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}


def _create(admin: AdminClient, topics: list[NewTopic], timeout: float) -> None:
    for topic in topics:
        name = topic.topic
        try:
            answered(
                admin,
                lambda t, new=topic: admin.create_topics(  # type: ignore[misc]
                    [new], operation_timeout=t, request_timeout=t
                )[new.topic],
                timeout,
            )
            log.info("created topic %s", name)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in _CREATE_REFUSED:
                raise StartupError(
                    f"could not create topic {name!r}: the worker's principal lacks CREATE on "
                    f"topic {name!r} (or on the cluster); grant it or create the topic beforehand"
                ) from exc
            if code != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker won
                raise StartupError(f"could not create topic {name!r}: {exc.args[0]}") from exc


def _listed(admin: AdminClient, names: list[str], timeout: float) -> dict[str, TopicMetadata]:
    """Topic metadata once it lists every topic in `names`: a topic just created, by this worker
    or by another one starting at the same time, shows up in metadata a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            topics: dict[str, TopicMetadata] = admin.list_topics(timeout=5.0).topics
        except KafkaException:
            topics = {}  # the broker asked died: ask again
        if all(name in topics and topics[name].partitions for name in names):
            return topics
        if time.monotonic() > deadline:
            raise StartupError(
                f"topic(s) {', '.join(names)} created but still not in the broker's metadata "
                f"after {timeout:g} s"
            )
        time.sleep(0.1)


def _require_compacted(admin: AdminClient, topic: str, timeout: float) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = answered(
            admin,
            lambda t: admin.describe_configs([resource], request_timeout=t)[resource],
            timeout,
        )
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise
        # Not among the rights a worker needs: without it the check is skipped, said once.
        log.warning(
            "cannot check that changelog topic %s is compacted: the principal lacks "
            "DESCRIBE_CONFIGS on it (grant it to have the check)",
            topic,
        )
        return
    policy = configs["cleanup.policy"].value
    if "compact" not in (policy or ""):
        raise StartupError(
            f"changelog topic {topic!r} has cleanup.policy={policy}; it must be compacted "
            "(cleanup.policy=compact) or old states would be deleted by retention"
        )
