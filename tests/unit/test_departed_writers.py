"""Exactly-once: a worker fences the transactional ids of static members that left the group."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, KafkaException

from consumer.departed_writers import DepartedWriters, FencingThread
from consumer.group_members import GroupLookupError, static_members
from tests.unit.kafka_fakes import make_runner


class Group:
    """The group's static members as each lookup finds them, and the ids fenced."""

    def __init__(self, *lookups: set[str] | KafkaException | GroupLookupError) -> None:
        self.lookups = list(lookups)
        self.fenced: list[str] = []
        self.refuse: set[str] = set()

    def members(self) -> set[str]:
        found = self.lookups.pop(0)
        if isinstance(found, (KafkaException, GroupLookupError)):
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


def test_a_lookup_whose_process_died_fences_nothing_and_the_next_one_still_counts() -> None:
    died = GroupLookupError("exit status -6: Assertion failed")
    group = Group({"a", "b"}, died, {"a"})
    w = writers(group)
    w.after_rebalance()
    assert w.after_rebalance() == []
    assert w.after_rebalance() == ["b"]


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
    assert f.runner.departed is not None and f.runner.departed.wait_handled(10)
    assert f.clients.fenced == ["g-b"]


def test_the_assignment_does_not_wait_for_the_group_lookup() -> None:
    # While the coordinator is away the lookup waits out its timeout: not in the callback.
    f = make_runner("exactly-once", instance_id="a")
    release = threading.Event()
    f.clients.lookup_gate = release
    f.clients.members = {"a", "b"}
    assigning = threading.Thread(target=f.assign, args=(0,), daemon=True)
    assigning.start()
    assigning.join(10)
    try:
        assert not assigning.is_alive(), "the assignment waited for the group's members"
        assert f.runner.assigned == {0}
        assert f.runner.departed is not None and not f.runner.departed.wait_handled(0)
    finally:
        release.set()
    assert f.runner.departed.wait_handled(10)


def test_rebalances_asked_for_during_a_lookup_are_handled_by_one_lookup_after_it() -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def members() -> set[str]:
        calls.append(len(calls))
        entered.set()
        release.wait(10)
        return {"a"} if len(calls) > 1 else {"a", "b"}

    fenced: list[str] = []
    fencing = FencingThread(DepartedWriters("a", members, fenced.append, lambda i: f"g-{i}"))
    try:
        fencing.after_rebalance()
        assert entered.wait(10)
        for _ in range(5):
            fencing.after_rebalance()
        release.set()
        assert fencing.wait_handled(10)
        assert len(calls) == 2  # the first lookup, then one for the five asked during it
        assert fenced == ["g-b"]
    finally:
        fencing.close()


def test_a_lookup_that_raises_anything_leaves_the_thread_alive_for_the_next() -> None:
    answers: list[set[str] | Exception] = [{"a", "b"}, RuntimeError("surprise"), {"a"}]

    def members() -> set[str]:
        found = answers.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    fenced: list[str] = []
    fencing = FencingThread(DepartedWriters("a", members, fenced.append, lambda i: f"g-{i}"))
    try:
        for _ in range(3):
            fencing.after_rebalance()
            assert fencing.wait_handled(10)
        assert fenced == ["g-b"]
    finally:
        fencing.close()


def test_an_at_least_once_worker_has_no_transactions_to_fence() -> None:
    f = make_runner("at-least-once", instance_id="a")
    f.clients.members = {"a", "b"}
    f.assign(0)
    f.clients.members = {"a"}
    f.assign(1)
    assert f.clients.fenced == []
    assert f.runner.departed is None
