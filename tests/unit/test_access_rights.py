"""The rights a worker needs: each missing one named at start-up, and the ACLs granting exactly
them. The broker's side (a real authorizer refusing and allowing) is the scenario
tests/reliability/test_cluster_access.py."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin._acl import AclOperation
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from consumer import access_rights, kafka_clients
from consumer.access_rights import acl_bindings
from consumer.config import Settings

READ, WRITE, DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE


def _done(value: object) -> Future[object]:
    future: Future[object] = Future()
    future.set_result(value)
    return future


def _failed(code: int) -> Future[object]:
    future: Future[object] = Future()
    future.set_exception(KafkaException(KafkaError(code)))
    return future


class AuthorizingAdmin:
    """A broker with an authorizer: `rights[topic]` are the operations the principal may perform
    (None: it may not even see the topic); `group_rights` likewise for its group."""

    def __init__(
        self,
        topics: dict[str, int],
        rights: dict[str, set[AclOperation] | None],
        group_rights: set[AclOperation] | None,
        create_allowed: bool = True,
    ) -> None:
        self.topics, self.rights, self.group_rights = topics, rights, group_rights
        self.create_allowed = create_allowed
        self.created: list[str] = []

    def list_topics(self, timeout: float) -> SimpleNamespace:
        visible = {t: n for t, n in self.topics.items() if self.rights.get(t) is not None}
        return SimpleNamespace(
            topics={
                t: SimpleNamespace(partitions=dict.fromkeys(range(n))) for t, n in visible.items()
            },
            brokers={1: None, 2: None, 3: None},
        )

    def describe_topics(self, topics: Any, **_: object) -> dict[str, Future[object]]:
        out: dict[str, Future[object]] = {}
        for name in topics.topic_names:
            ops = self.rights.get(name)
            if ops is None:
                out[name] = _failed(KafkaError.TOPIC_AUTHORIZATION_FAILED)
            elif name not in self.topics:
                out[name] = _failed(KafkaError.UNKNOWN_TOPIC_OR_PART)
            else:
                out[name] = _done(SimpleNamespace(authorized_operations=sorted(ops)))
        return out

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        """What the worker's group probe (a consumer that never joins) is told: as librdkafka
        does, a refused coordinator lookup makes the request time out..."""
        if self.group_rights is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "committed offsets"))
        return partitions

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        """... and the refusal itself comes as an error event."""
        if self.group_rights is None:
            refusal = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)
            return [SimpleNamespace(error=lambda: refusal)]
        return []

    def probe(self, conf: dict[str, Any]) -> Any:
        assert conf["group.id"] and conf["enable.auto.commit"] is False
        return SimpleNamespace(committed=self.committed, consume=self.consume, close=lambda: None)

    def create_topics(
        self, new: list[Any], operation_timeout: float, **_: object
    ) -> dict[str, Any]:
        if not self.create_allowed:
            return {t.topic: _failed(KafkaError.TOPIC_AUTHORIZATION_FAILED) for t in new}
        for t in new:
            self.topics[t.topic] = t.num_partitions
            self.created.append(t.topic)
        return {t.topic: _done(None) for t in new}

    def describe_configs(self, resources: list[Any], **_: object) -> dict[Any, Future[object]]:
        return {r: _failed(KafkaError.TOPIC_AUTHORIZATION_FAILED) for r in resources}


SETTINGS = Settings(model_path=Path("m.keras"), group_id="g", startup_timeout_s=2)
ALL_TOPICS = {"samples": 4, "probabilities": 4, "samples.dlq": 1, "g-state-changelog": 4}


def _prepare(monkeypatch: pytest.MonkeyPatch, admin: AuthorizingAdmin, **settings: Any) -> Any:
    monkeypatch.setattr(kafka_clients, "AdminClient", lambda conf, **kw: admin)
    monkeypatch.setattr(access_rights, "Consumer", admin.probe)
    values = {"model_path": Path("m.keras"), "group_id": "g", "startup_timeout_s": 2, **settings}
    return kafka_clients.prepare_topics(Settings(**values))


def test_every_missing_right_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = AuthorizingAdmin(
        dict(ALL_TOPICS),
        {
            "samples": {READ, DESCRIBE},
            "probabilities": {DESCRIBE},  # may see it, not write it
            "samples.dlq": None,  # may not even see it
            "g-state-changelog": {READ, WRITE, DESCRIBE},
        },
        group_rights=None,
    )
    with pytest.raises(kafka_clients.StartupError) as info:
        _prepare(monkeypatch, admin)
    message = str(info.value)
    for right in (
        "WRITE on topic 'probabilities'",
        "WRITE on topic 'samples.dlq'",
        "READ on group 'g'",
    ):
        assert right in message
    assert "changelog" not in message and "'samples'" not in message
    assert "docs/security.md" in message


def test_exact_rights_pass_without_describe_configs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rights: dict[str, set[AclOperation] | None] = {
        "samples": {READ, DESCRIBE},
        "probabilities": {WRITE, DESCRIBE},
        "samples.dlq": {WRITE, DESCRIBE},
        "g-state-changelog": {READ, WRITE, DESCRIBE},
    }
    admin = AuthorizingAdmin(dict(ALL_TOPICS), rights, group_rights={READ, DESCRIBE})
    assert _prepare(monkeypatch, admin).input_partitions == 4
    # The compaction check needs DESCRIBE_CONFIGS, which is not among the rights: said, skipped.
    assert "DESCRIBE_CONFIGS" in caplog.text


def test_a_topic_it_may_not_create_is_refused_naming_create(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = {t: n for t, n in ALL_TOPICS.items() if t != "g-state-changelog"}
    rights: dict[str, set[AclOperation] | None] = {t: {READ, WRITE, DESCRIBE} for t in ALL_TOPICS}
    admin = AuthorizingAdmin(topics, rights, group_rights={READ}, create_allowed=False)
    refused = "lacks CREATE on topic 'g-state-changelog'"
    with pytest.raises(kafka_clients.StartupError, match=refused):
        _prepare(monkeypatch, admin, create_topics=True)


def test_a_missing_input_topic_it_may_see_is_said_to_be_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = {t: n for t, n in ALL_TOPICS.items() if t != "samples"}
    rights: dict[str, set[AclOperation] | None] = {t: {READ, WRITE} for t in ALL_TOPICS}
    admin = AuthorizingAdmin(topics, rights, group_rights={READ})
    with pytest.raises(kafka_clients.StartupError, match="input topic 'samples' does not exist"):
        _prepare(monkeypatch, admin)


def _rights(bindings: list[Any]) -> set[tuple[str, str, str, str]]:
    return {
        (b.restype.name, b.name, b.resource_pattern_type.name, b.operation.name) for b in bindings
    }


def test_the_acls_grant_exactly_the_workers_rights() -> None:
    s = Settings(model_path=Path("m.keras"), group_id="g", guarantee="exactly-once",
                 create_topics=True)  # fmt: skip
    bindings = acl_bindings(s, "User:scorer")
    assert {b.principal for b in bindings} == {"User:scorer"}
    assert _rights(bindings) == {
        ("TOPIC", "samples", "LITERAL", "READ"),
        ("TOPIC", "probabilities", "LITERAL", "WRITE"),
        ("TOPIC", "samples.dlq", "LITERAL", "WRITE"),
        ("TOPIC", "g-state-changelog", "LITERAL", "READ"),
        ("TOPIC", "g-state-changelog", "LITERAL", "WRITE"),
        ("GROUP", "g", "LITERAL", "READ"),
        # every worker of the group: <group>-<instance-id>
        ("TRANSACTIONAL_ID", "g-", "PREFIXED", "WRITE"),
        ("TOPIC", "probabilities", "LITERAL", "CREATE"),
        ("TOPIC", "samples.dlq", "LITERAL", "CREATE"),
        ("TOPIC", "g-state-changelog", "LITERAL", "CREATE"),
    }


def test_a_shadow_topic_needs_write_and_create_with_create_topics() -> None:
    s = Settings(model_path=Path("m.keras"), group_id="g", create_topics=True,
                 shadow_model=Path("c.keras"), shadow_topic="shadow")  # fmt: skip
    rights = _rights(acl_bindings(s, "User:scorer"))
    assert {("TOPIC", "shadow", "LITERAL", op) for op in ("WRITE", "CREATE")} <= rights


def test_at_least_once_without_create_topics_needs_no_transactional_id_nor_create() -> None:
    bindings = acl_bindings(SETTINGS, "User:scorer")
    kinds = {(b.restype, b.operation) for b in bindings}
    assert (ResourceType.TRANSACTIONAL_ID, AclOperation.WRITE) not in kinds
    assert all(b.operation != AclOperation.CREATE for b in bindings)
    assert all(b.resource_pattern_type == ResourcePatternType.LITERAL for b in bindings)


class FailingOverAdmin(AuthorizingAdmin):
    """The first requests go to a broker that was SIGKILLed: the topic description times out
    ("Timed out waiting for controller"), the group's coordinator is not there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked_topics = self.asked_groups = self.listed = self.asked_configs = 0

    def list_topics(self, timeout: float) -> SimpleNamespace:
        self.listed += 1  # a metadata refresh: the client learns which node is the controller
        return super().list_topics(timeout)

    def describe_topics(self, topics: Any, **kw: object) -> dict[str, Future[object]]:
        self.asked_topics += 1
        if self.listed < 2:  # the start-up listing, then the refresh after the time-out
            return {name: _failed(KafkaError._TIMED_OUT) for name in topics.topic_names}
        return super().describe_topics(topics, **kw)

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        self.asked_groups += 1
        if self.asked_groups <= 2:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets")
            )
        return super().committed(partitions, timeout)

    def describe_configs(self, resources: list[Any], **kw: object) -> dict[Any, Future[object]]:
        self.asked_configs += 1
        if self.asked_configs == 1:  # sent to the node that died: never answered
            return {r: Future() for r in resources}
        return super().describe_configs(resources, **kw)


def test_a_worker_starting_during_a_broker_failover_waits_it_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker restarted as a broker died used to exit at its rights check.
    rights: dict[str, set[AclOperation] | None] = {t: {READ, WRITE} for t in ALL_TOPICS}
    admin = FailingOverAdmin(dict(ALL_TOPICS), rights, group_rights={READ})
    # Long enough for one request to go unanswered (5 s) and be asked again.
    assert _prepare(monkeypatch, admin, startup_timeout_s=10).input_partitions == 4
    assert admin.asked_topics == 2 and admin.asked_groups == 3 and admin.asked_configs == 2


class StuckCoordinatorAdmin(AuthorizingAdmin):
    """The group's coordinator was SIGKILLed as the worker started: the first probe client keeps
    queueing its requests for the dead broker, so its every request times out; a client made
    after the group moved looks the new coordinator up and is answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probes = 0

    def probe(self, conf: dict[str, Any]) -> Any:
        self.probes += 1
        if self.probes > 1:
            return super().probe(conf)

        def stuck(partitions: list[Any], timeout: float) -> list[Any]:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed"))

        return SimpleNamespace(committed=stuck, consume=self.consume, close=lambda: None)


def test_a_group_probe_stuck_on_a_dead_coordinator_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker restarted as the group's coordinator was killed exited after its start-up timeout:
    # its one probe client asked the dead broker until then (the group had moved in 9 s).
    rights: dict[str, set[AclOperation] | None] = {t: {READ, WRITE} for t in ALL_TOPICS}
    admin = StuckCoordinatorAdmin(dict(ALL_TOPICS), rights, group_rights={READ})
    assert _prepare(monkeypatch, admin, startup_timeout_s=5).input_partitions == 4
    assert admin.probes == 2
