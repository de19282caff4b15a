"""Exactly-once: abort the open transaction of a worker that left the group without closing.

A worker killed mid-transaction leaves its transaction open until the broker aborts it at the
transaction timeout (and the broker's next check for expired transactions, up to 10 s later).
Until then read_committed readers see nothing past it: downstream consumers, and the restore of
the partitions the dead worker held, so the worker that takes them over waits too. Its successor
does not have to wait: a producer that initialises the dead worker's transactional id makes the
broker abort that transaction at once (and fences the id, as a restarted worker does its own).

Which ids to fence: after every rebalance each worker reads the group's members; a static member
(its `group.instance.id`) seen after an earlier rebalance and gone now has left, and its
transactional id is `<group-id>-<instance-id>`. A member that is still in the group is never
fenced, so a rebalance that moves partitions between live workers costs nothing but the lookup.
A worker whose session expired while it was alive is fenced like a dead one: its transaction
would be refused anyway (its partitions moved), and it starts a new producer when it rejoins.

The lookup and the fences wait on the group coordinator, up to their timeout each while it is
away, so they run on a thread of their own (`FencingThread`): the assignment callback only asks.
The lookup itself runs in a child process (`consumer.group_members`: the client library's admin
requests to a coordinator can abort the process when a broker drops mid-request).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaException, Producer

from consumer.config import Settings, transactional_id
from consumer.group_members import GroupLookupError, static_members_of
from consumer.logging_setup import log_event

log = logging.getLogger(__name__)

MembersLookup = Callable[[], set[str]]
Fence = Callable[[str], None]


class DepartedWriters:
    """Remembers the group's static members between rebalances and fences those that left."""

    def __init__(
        self,
        own_instance: str,
        members: MembersLookup,
        fence: Fence,
        transactional_id_of: Callable[[str], str],
    ) -> None:
        self.own_instance = own_instance
        self._members = members
        self._fence = fence
        self._transactional_id_of = transactional_id_of
        self.peers: set[str] = set()  # static members seen after the last rebalance

    def after_rebalance(self) -> list[str]:
        """Fence the transactional ids of the members that left since the last rebalance; return
        the instance ids fenced. A failed lookup or fence is logged: the broker's transaction
        timeout still aborts the transaction, later."""
        try:
            members = self._members()
        except (KafkaException, GroupLookupError) as exc:
            log_event(log, "group_members_unknown", level=logging.WARNING, error=str(exc))
            return []
        left = sorted(self.peers - members - {self.own_instance})
        self.peers = members
        fenced = []
        for instance in left:
            tid = self._transactional_id_of(instance)
            started = time.monotonic()
            try:
                self._fence(tid)
            except KafkaException as exc:
                log_event(log, "departed_writer_not_fenced", level=logging.WARNING,
                          instance_id=instance, transactional_id=tid, error=str(exc))  # fmt: skip
                continue
            fenced.append(instance)
            log_event(log, "departed_writer_fenced", instance_id=instance, transactional_id=tid,
                      seconds=round(time.monotonic() - started, 3))  # fmt: skip
        return fenced


class FencingThread:
    """Runs `DepartedWriters.after_rebalance` on a thread, once for any number of rebalances
    asked for while it was busy (the lookup after the last of them sees every member gone)."""

    def __init__(self, writers: DepartedWriters) -> None:
        self.writers = writers
        self._changed = threading.Condition()
        self._asked = 0  # rebalances asked for
        self._handled = 0  # of them, the ones a finished lookup came after
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="departed-writers", daemon=True)
        self._thread.start()

    def after_rebalance(self) -> None:
        """Look for departed members and fence them, soon; returns at once."""
        with self._changed:
            self._asked += 1
            self._changed.notify_all()

    def wait_handled(self, timeout_s: float) -> bool:
        """Wait until every rebalance asked for so far has been handled; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._handled >= self._asked, timeout_s)

    def close(self) -> None:
        """Stop after the lookup or fence under way, if any (not waited for: it has a timeout
        of its own and the thread dies with the process)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or self._asked > self._handled)
                if self._closed:
                    return
                asked = self._asked
            try:
                self.writers.after_rebalance()
            except Exception as exc:  # the thread must outlive a surprise: the next one may work
                log_event(log, "departed_writers_failed", level=logging.ERROR, error=repr(exc))
            with self._changed:
                self._handled = asked
                self._changed.notify_all()


def for_settings(settings: Settings, timeout_s: float) -> DepartedWriters:
    """The real lookups: the group's description (in a child process, `group_members`), and a
    producer that initialises an id."""
    properties = settings.admin_properties()

    def members() -> set[str]:
        return static_members_of(properties, settings.group_id, timeout_s)

    def fence(transactional_id: str) -> None:
        conf = {**settings.producer_properties(), "transactional.id": transactional_id}
        producer = Producer(conf)
        # Initialising aborts the id's open transaction and bumps its epoch; nothing is sent.
        producer.init_transactions(timeout_s)

    return DepartedWriters(
        settings.instance_id, members, fence, lambda i: transactional_id(settings.group_id, i)
    )
