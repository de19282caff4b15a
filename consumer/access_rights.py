"""The ACL rights a worker needs, checked at start-up so that a principal without one of them is
refused before anything is consumed or written, with the missing rights named.

A worker needs exactly: READ on the input topic and on its consumer group; WRITE on the output,
dead-letter and changelog topics; READ on the changelog (its restore); WRITE on its
transactional id under exactly-once; CREATE (on the topics or the cluster) only with
--create-topics, and only for topics that do not exist yet. Rights implied by these (DESCRIBE by
READ or WRITE, idempotent writes by WRITE on a topic) need no ACL of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from consumer.broker_away import broker_away, refresh_metadata
from consumer.config import Settings

log = logging.getLogger(__name__)

_RETRY_S = 0.2
_PROBE_MAX_S = 5.0  # the longest wait for one answer of the group probe


_TOPIC_PROBLEMS = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART)


def refusal(rights: list[str]) -> str:
    """The start-up error for missing rights, each named "<OPERATION> on <resource> '<name>'"."""
    return (
        "the worker's principal lacks " + ", ".join(rights) + "; grant them with ACLs "
        "(docs/security.md lists every right a worker needs) and start it again"
    )


@dataclass(frozen=True, slots=True)
class TopicAccess:
    """What the broker told about one topic: whether the principal may see it, whether it
    exists, and the operations the principal may perform on it (None: the broker did not say)."""

    authorized: bool
    exists: bool
    operations: frozenset[AclOperation] | None = None


def topic_rights_needed(settings: Settings) -> dict[str, tuple[AclOperation, ...]]:
    needed = {
        settings.input_topic: (AclOperation.READ,),
        settings.output_topic: (AclOperation.WRITE,),
        settings.dlq_topic: (AclOperation.WRITE,),
        settings.changelog_topic: (AclOperation.READ, AclOperation.WRITE),
    }
    if settings.shadow_topic:
        needed[settings.shadow_topic] = (AclOperation.WRITE,)
    return needed


def describe_topics(admin: AdminClient, names: list[str], timeout: float) -> dict[str, TopicAccess]:
    """Each topic's access. A broker away (the one asked was SIGKILLed, a leader is moving) is
    asked again until `timeout`: a worker starting during a failover waits it out."""
    deadline = time.monotonic() + timeout
    access: dict[str, TopicAccess] = {}
    while True:
        left = [name for name in names if name not in access]
        attempt = _attempt_timeout(deadline)
        futures = admin.describe_topics(
            TopicCollection(left), include_authorized_operations=True, request_timeout=attempt
        )
        for name, future in futures.items():
            try:
                found = future.result(attempt + 1)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue  # asked again below
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    # The broker answers so for a topic the principal may not see, existing or not.
                    access[name] = TopicAccess(authorized=False, exists=False)
                elif code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    access[name] = TopicAccess(authorized=True, exists=False)
                elif not broker_away(exc.args[0]) or time.monotonic() >= deadline:
                    raise
                continue
            ops = found.authorized_operations
            access[name] = TopicAccess(True, True, None if ops is None else frozenset(ops))
        if len(access) == len(names):
            return access
        time.sleep(_RETRY_S)
        # "Timed out waiting for controller": the client still names the node that died as the
        # controller until its metadata is refreshed (every five minutes by itself).
        refresh_metadata(admin)


def missing_topic_rights(
    access: Mapping[str, TopicAccess], needed: Mapping[str, tuple[AclOperation, ...]]
) -> list[str]:
    missing: list[str] = []
    for name, operations in needed.items():
        topic = access.get(name)
        if topic is None:
            continue
        for op in operations:
            granted = topic.operations
            if not topic.authorized or (granted is not None and op not in granted):
                missing.append(f"{op.name} on topic {name!r}")
    return missing


def missing_group_rights(settings: Settings, timeout: float) -> list[str]:
    """Whether the principal may use its group, found by asking for the group's committed
    offsets (which needs DESCRIBE, implied by READ) with a consumer that never joins. Not the
    admin client's group description: librdkafka 2.16 aborts the process (an assertion in
    rd_kafka_enq_once_del_source_return) when the group's coordinator dies during it."""
    deadline = time.monotonic() + timeout
    refused = [f"READ on group {settings.group_id!r}"]
    probe = _group_probe(settings)
    wait = 1.0  # short at first; longer later, for a new client's connections and lookups
    try:
        while True:
            try:
                left = max(0.1, deadline - time.monotonic())
                probe.committed([TopicPartition(settings.input_topic, 0)], timeout=min(wait, left))
                return []
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    return refused
                if code in _TOPIC_PROBLEMS:
                    return []  # the input topic's own check says what is wrong with it
                if not broker_away(exc.args[0]) or time.monotonic() >= deadline:
                    raise
            # A refused coordinator lookup does not end the request (it times out): the client
            # reports the refusal as an error event, which consume() hands over.
            for event in probe.consume(100, timeout=_RETRY_S):
                err = event.error()
                if err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    return refused
            # A client whose coordinator died keeps queueing its requests for that broker until
            # they time out, long after the group moved; a new one looks the coordinator up.
            probe.close()
            probe = _group_probe(settings)
            wait = min(_PROBE_MAX_S, wait * 2)
    finally:
        probe.close()


def _group_probe(settings: Settings) -> Consumer:
    """A consumer of the worker's group that never joins it: it only asks committed offsets."""
    return Consumer(
        {
            **settings.consumer_properties(),
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "log_level": 0,
            "logger": log,
        }
    )


T = TypeVar("T")


def answered(admin: AdminClient, ask: Callable[[float], Future[T]], timeout: float) -> T:
    """The result of an admin request `ask(request_timeout)`. While a broker is away (the one
    asked died; the client still names a dead controller until its metadata is refreshed) it is
    asked again, with the metadata refreshed, until `timeout`; other errors are raised."""
    deadline = time.monotonic() + timeout
    while True:
        attempt = _attempt_timeout(deadline)
        try:
            return ask(attempt).result(attempt + 1)
        except (KafkaException, TimeoutError) as exc:
            away = isinstance(exc, TimeoutError) or broker_away(exc.args[0])
            if not away or time.monotonic() >= deadline:
                raise
        time.sleep(_RETRY_S)
        refresh_metadata(admin)


def _attempt_timeout(deadline: float) -> float:
    """One request's time-out: short enough that a request sent to a broker that died is asked
    again (of another broker) before the start-up deadline."""
    return max(0.5, min(5.0, deadline - time.monotonic()))


def missing_transactional_rights(settings: Settings, timeout: float) -> list[str]:
    """Exactly-once: whether the principal may use its transactional id, found by initialising
    a producer with it, as the worker will a moment later (which fences this one: harmless)."""
    if settings.guarantee != "exactly-once":
        return []
    producer = Producer(
        {
            **settings.producer_properties(),
            "transactional.id": settings.transactional_id,
            # The client's own report of the refusal would read as the worker failing.
            "log_level": 0,
            "logger": log,
        }
    )
    try:
        producer.init_transactions(timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            return [f"WRITE on transactional id {settings.transactional_id!r}"]
        # Anything else (a coordinator still loading) the worker's own producer retries.
        log.info("transactional id check inconclusive: %s", exc.args[0])
    # Not flushed: it sent nothing, and a producer in a fatal state refuses even that.
    del producer
    return []


def acl_bindings(settings: Settings, principal: str) -> list[AclBinding]:
    """The ACLs that give `principal` (e.g. "User:scorer") exactly the rights the workers of a
    group with these settings need, for an operator to create (AdminClient.create_acls). One set
    serves the whole group: the transactional ids, `<group-id>-<instance-id>`, are granted by
    their prefix `<group-id>-`, so a worker added later needs no ACL of its own."""

    def allow(
        kind: ResourceType,
        name: str,
        op: AclOperation,
        pattern: ResourcePatternType = ResourcePatternType.LITERAL,
    ) -> AclBinding:
        return AclBinding(kind, name, pattern, principal, "*", op, AclPermissionType.ALLOW)

    bindings = [
        allow(ResourceType.TOPIC, topic, op)
        for topic, ops in topic_rights_needed(settings).items()
        for op in ops
    ]
    bindings.append(allow(ResourceType.GROUP, settings.group_id, AclOperation.READ))
    if settings.guarantee == "exactly-once":
        bindings.append(
            allow(
                ResourceType.TRANSACTIONAL_ID,
                f"{settings.group_id}-",
                AclOperation.WRITE,
                ResourcePatternType.PREFIXED,
            )
        )
    if settings.create_topics:
        created = [settings.output_topic, settings.dlq_topic, settings.changelog_topic]
        created += [settings.shadow_topic] * bool(settings.shadow_topic)
        bindings += [allow(ResourceType.TOPIC, t, AclOperation.CREATE) for t in created]
    return bindings
