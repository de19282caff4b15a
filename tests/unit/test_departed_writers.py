"""Exactly-once: a worker fences the transactional ids of static members that left the group."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from consumer.departed_writers import DepartedWriters, static_members
from tests.unit.kafka_fakes import make_runner


class Group:
    """The group's static members as each lookup finds them, and the ids fenced."""

    def __init__(self, *lookups: set[str] | KafkaException) -> None:
        self.lookups = list(lookups)
        self.fenced: list[str] = []
        self.refuse: set[str] = set()

    def members(self) -> set[str]:
        found = self.lookups.pop(0)
        if isinstance(found, KafkaException):
            raise found
        return found

    def fence(self, transactional_id: str) -> None:
        if transactional_id in self.refuse:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        self.fenced.append(transactional_id)


def writers(group: Group, own: str = "a") -> DepartedWriters:
    return DepartedWriters(own, group.members, group.fence, lambda i: f"g-{i}")


def test_a_member_gone_since_the_last_rebalance_is_fenced_and_one_still_there_is_not() -> None:
    group = Group({"a", "b", "c"}, {"a", "c"})
    w = writers(group)
    assert w.after_rebalance() == []  # nothing known before the first rebalance
    assert w.after_rebalance() == ["b"]
    assert group.fenced == ["g-b"]


def test_partitions_moving_between_live_members_fence_no_one() -> None:
    group = Group({"a", "b"}, {"a", "b", "c"}, {"a", "b", "c"})
    w = writers(group)
    for _ in range(3):
        assert w.after_rebalance() == []
    assert group.fenced == []


def test_the_worker_never_fences_itself() -> None:
    group = Group({"a", "b"}, {"b"})  # the lookup raced this worker's own join
    w = writers(group)
    w.after_rebalance()
    assert w.after_rebalance() == []
    assert group.fenced == []


def test_a_member_that_left_and_came_back_is_not_fenced() -> None:
    group = Group({"a", "b"}, {"a", "b"})  # b restarted within the session: never left the group
    w = writers(group)
    w.after_rebalance()
    assert w.after_rebalance() == []


def test_a_failed_lookup_fences_nothing_and_keeps_the_members_known_before() -> None:
    refused = KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    group = Group({"a", "b"}, refused, {"a"})
    w = writers(group)
    w.after_rebalance()
    assert w.after_rebalance() == []
    assert w.after_rebalance() == ["b"]  # b left while the group could not be read


def test_a_fence_that_fails_does_not_stop_the_others() -> None:
    group = Group({"a", "b", "c", "d"}, {"a"})
    group.refuse = {"g-c"}
    w = writers(group)
    w.after_rebalance()
    assert w.after_rebalance() == ["b", "d"]
    assert group.fenced == ["g-b", "g-d"]


def test_dynamic_members_have_no_transactional_id_to_fence() -> None:
    assert static_members(["a", None, "", "b"]) == {"a", "b"}


def test_an_exactly_once_worker_fences_a_member_that_left_when_partitions_come() -> None:
    f = make_runner("exactly-once", instance_id="a")
    f.clients.members = {"a", "b"}
    f.assign(0)
    f.clients.members = {"a"}  # b's session expired: its partition comes to a
    f.assign(1)
    assert f.clients.fenced == ["g-b"]


def test_an_at_least_once_worker_has_no_transactions_to_fence() -> None:
    f = make_runner("at-least-once", instance_id="a")
    f.clients.members = {"a", "b"}
    f.assign(0)
    f.clients.members = {"a"}
    f.assign(1)
    assert f.clients.fenced == []
    assert f.runner.departed is None
