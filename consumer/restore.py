"""Rebuilding the state of input partitions from their changelog partitions.

Changelog partition p holds the keys of input partition p. Restoring reads it from the beginning
up to its end as of the start of the restore (the high watermark, or the last stable offset for a
read_committed reader); the newest record of a key wins, a tombstone forgets it, a record written
under another model version goes where the target puts it (`ModelVersions`: that version's
table, or a final record when the worker cannot serve it) and is counted. A corrupt record
forgets the key too: the newest record is the truth, and an older state must not stand in for
it. The key starts fresh, and the record is reported (key, partition, offset, reason) unless a
newer one of the key follows.

A `Restorer` works in slices (`step`), so that the poll loop can keep polling between them: a
restore may take longer than the consumer's poll interval or a transaction's timeout.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Protocol, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.broker_away import broker_away, refresh_metadata
from consumer.codecs import changelog as changelog_codec
from consumer.codecs.changelog import ChangelogOutcome
from consumer.engine.state_table import StateTable
from consumer.memory import release_free_memory


class RestoreTarget(Protocol):
    """Where restored records go: the state tables of the versions a worker serves."""

    def apply_changelog(
        self, keys: Sequence[str], parts: Sequence[int], values: Sequence[bytes | None]
    ) -> list[ChangelogOutcome]: ...

    def corrupt_reason(self, value: bytes) -> str: ...

    def expect(self, records: int) -> None: ...

    def fit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TableTarget:
    """One state table of one model version: other versions' states are discarded."""

    table: StateTable
    model_version: str

    def apply_changelog(
        self, keys: Sequence[str], parts: Sequence[int], values: Sequence[bytes | None]
    ) -> list[ChangelogOutcome]:
        return changelog_codec.apply_records(self.table, keys, parts, values, self.model_version)

    def corrupt_reason(self, value: bytes) -> str:
        return changelog_codec.corrupt_reason(self.table, value)

    def expect(self, records: int) -> None:
        self.table.expect(records)

    def fit(self) -> None:
        self.table.fit()


_BATCH = 10_000
_RETRY_S = 0.2
# Nothing read for this long with partitions left: the client is asked to refresh its
# metadata, as it may still be fetching from a leader that died.
_STALL_S = 2.0
# One ask for a partition's watermarks: a leader that died does not answer, and its successor is
# found only by refreshing the metadata between asks (30 s asks held a restore 30 s past that).
_ASK_S = 5.0
# Besides a broker away: a changelog topic created a moment ago is unknown for a while.
_NOT_YET = KafkaError.UNKNOWN_TOPIC_OR_PART


class RestoreError(RuntimeError):
    """The changelog could not be read to its end in time."""


@dataclass(frozen=True, slots=True)
class CorruptRecord:
    """The newest changelog record of a key, which could not be applied."""

    key: str | None  # None: the record had no key
    partition: int
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class RestoreStats:
    partitions: tuple[int, ...]
    records: int
    outcomes: Counter[str]  # restored, ended, tombstone, version_mismatch, corrupt
    seconds: float
    corrupt: tuple[CorruptRecord, ...] = ()  # keys that start fresh because of them

    @property
    def discarded(self) -> int:
        return self.outcomes["version_mismatch"]


@dataclass
class _Session:
    """Everything restored since the restorer was last idle: one `restored` report."""

    started: float
    partitions: list[int] = field(default_factory=list)
    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    corrupt: dict[str | None, CorruptRecord] = field(default_factory=dict)


class Restorer:
    """Restores partitions added at any time, a slice at a time."""

    def __init__(
        self,
        reader: Consumer,
        topic: str,
        *,
        target: RestoreTarget,
        timeout_s: float = 300.0,
    ) -> None:
        self.reader = reader
        self.topic = topic
        self.target = target
        self._refreshed_at = 0.0
        self.timeout_s = timeout_s  # the longest a partition may go without any progress
        self._ends: dict[int, int] = {}  # partition -> end offset (exclusive)
        self._next: dict[int, int] = {}  # partition -> next offset to read
        self._done: list[int] = []  # finished, not yet reported by step()
        self._session: _Session | None = None
        self._progress_at = time.monotonic()
        self._assigned = False

    @property
    def pending(self) -> set[int]:
        """Partitions added and not yet reported finished by `step`."""
        return set(self._ends) | set(self._done)

    def add(self, partitions: Iterable[int]) -> None:
        """Start restoring these partitions (from their beginning, dropping any progress)."""
        now = time.monotonic()
        if self._session is None:
            self._session = _Session(now)
        self._progress_at = now
        records = 0
        for p in partitions:
            low, high = _watermarks(
                self.reader, TopicPartition(self.topic, p), now + self.timeout_s
            )
            if p not in self._session.partitions:
                self._session.partitions.append(p)
            if p in self._done:
                self._done.remove(p)
            if high > low:
                self._ends[p], self._next[p] = high, low
                records += high - low
            else:
                self._ends.pop(p, None)
                self._done.append(p)
        # Each record may be a new key: the table's room is mapped ahead, not page by page.
        self.target.expect(records)
        self._reassign()

    def abandon(self, partitions: Iterable[int]) -> None:
        """Stop restoring these partitions (revoked or lost); what they restored stays in the
        table for the caller to drop."""
        gone = set(partitions)
        for p in gone:
            self._ends.pop(p, None)
            self._next.pop(p, None)
        self._done = [p for p in self._done if p not in gone]
        if self._session is not None:
            self._session.partitions = [p for p in self._session.partitions if p not in gone]
            corrupt = self._session.corrupt
            for key in [k for k, c in corrupt.items() if c.partition in gone]:
                del corrupt[key]
        self._reassign()
        if not self.pending:
            self._session = None
            self.target.fit()

    def step(self, budget_s: float) -> tuple[list[int], RestoreStats | None]:
        """Read for about `budget_s`. Returns the partitions finished since the last call and,
        when nothing is left to restore, the whole restore's figures."""
        session = self._session
        if session is None:
            return [], None
        deadline = time.monotonic() + budget_s
        while self._ends:  # at least one read per slice, however small the budget
            timeout = max(0.0, min(0.1, deadline - time.monotonic()))
            msgs = self.reader.consume(_BATCH, timeout=timeout)
            now = time.monotonic()
            if msgs:
                self._progress_at = now
            elif now - max(self._progress_at, self._refreshed_at) > _STALL_S:
                self._refreshed_at = now
                refresh_metadata(self.reader, self.topic)
            self._apply(msgs, session)
            if time.monotonic() >= deadline:
                break
        if self._ends and time.monotonic() - self._progress_at > self.timeout_s:
            raise RestoreError(
                f"changelog partitions {sorted(self._ends)} not restored: nothing read for "
                f"{self.timeout_s:g} s"
            )
        finished, self._done = self._done, []
        if self._ends:
            return finished, None
        self._session = None
        self.target.fit()
        release_free_memory()  # what the reads allocated, glibc would otherwise keep
        stats = RestoreStats(
            tuple(session.partitions),
            session.records,
            session.outcomes,
            time.monotonic() - session.started,
            tuple(session.corrupt.values()),
        )
        return finished, stats

    def _apply(self, msgs: list[Message], session: _Session) -> None:
        """Apply what one read returned. The common read, records of partitions being restored,
        none of them the last before the partition's end and none an error, is taken column by
        column; any other is taken record by record."""
        if not msgs:
            return
        ends = self._ends
        parts = list(map(Message.partition, msgs))
        last = dict(zip(parts, range(len(parts)), strict=True))  # records come in order
        newest = {p: msgs[i].offset() for p, i in last.items()}
        if (
            any(p not in ends or o is None or o >= ends[p] - 1 for p, o in newest.items())
            # any(), not a comparison with None: the client's errors raise on one
            or any(map(Message.error, msgs))
            or not all(raw_keys := list(map(Message.key, msgs)))
        ):
            self._apply_each(msgs, session)
            return
        session.records += len(msgs)
        self._next.update((p, o + 1) for p, o in newest.items() if p is not None and o is not None)
        keys = list(
            map(bytes.decode, cast(list[bytes], raw_keys), repeat("utf-8"), repeat("replace"))
        )
        values = list(map(Message.value, msgs))
        # An offset is wanted only for a corrupt record's report.
        self._apply_records(
            keys, cast(list[int], parts), lambda i: cast(int, msgs[i].offset()), values, session
        )

    def _apply_each(self, msgs: list[Message], session: _Session) -> None:
        ends = self._ends
        finished = False
        keys: list[str] = []
        parts: list[int] = []
        offsets: list[int] = []
        values: list[bytes | None] = []
        for msg in msgs:
            p, offset, err = msg.partition(), msg.offset(), msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                if broker_away(err) or err.code() == _NOT_YET:
                    continue  # a broker away: the reader fetches again once a leader answers
                raise KafkaException(err)
            if p is None or p not in ends:
                continue  # abandoned, or fetched before it was finished
            if err is not None:
                # The end of the partition, as its leader sees it now. A leader elected during
                # the restore may still report a high watermark below the restore's end offset:
                # an end before it is read past, or the keys' newest records would be missed.
                if offset is not None and offset >= ends[p]:
                    finished = self._finish(p, reached=offset) or finished
                continue
            assert offset is not None
            if offset >= ends[p] and self._finish(p, reached=offset):
                finished = True
                continue  # else the partition grew past its end: this record is read
            session.records += 1
            self._next[p] = offset + 1
            raw_key = msg.key()
            if raw_key:
                keys.append(raw_key.decode("utf-8", "replace"))
                parts.append(p)
                offsets.append(offset)
                values.append(msg.value())
            else:
                session.outcomes["corrupt"] += 1
                session.corrupt[None] = CorruptRecord(None, p, offset, "no key")
            if offset >= ends[p] - 1:
                finished = self._finish(p, reached=offset + 1) or finished
        if keys:
            self._apply_records(keys, parts, offsets.__getitem__, values, session)
        if finished:
            self._reassign()

    def _apply_records(
        self,
        keys: list[str],
        parts: list[int],
        offset_of: Callable[[int], int],
        values: list[bytes | None],
        session: _Session,
    ) -> None:
        """Changelog records into the table, in order; a key's newest record is the truth."""
        outcomes = self.target.apply_changelog(keys, parts, values)
        session.outcomes.update(outcomes)
        if not session.corrupt and "corrupt" not in outcomes:
            return
        newest = {key: i for i, key in enumerate(keys)}
        for key, i in newest.items():
            value = values[i]
            if outcomes[i] == "corrupt":
                reason = self.target.corrupt_reason(value) if value else "empty value"
                session.corrupt[key] = CorruptRecord(key, parts[i], offset_of(i), reason)
            else:
                session.corrupt.pop(key, None)  # a newer record of the key is the truth

    def _finish(self, p: int, reached: int) -> bool:
        """Whether partition p is restored, everything before offset `reached` having been read
        (or skipped by the client: aborted records, transaction markers)."""
        if p not in self._ends:
            return False
        # The end was asked when the restore began, maybe of a leader just elected, whose high
        # watermark can lag for a moment: a higher watermark now is records still to read.
        # Compared with where the reader stands, not with that end: the abort of a departed
        # writer's transaction appends a marker during the restore, and a reader already past
        # it (its end-of-partition at the new watermark) would wait for records that never come.
        deadline = time.monotonic() + self.timeout_s
        _, high = _watermarks(self.reader, TopicPartition(self.topic, p), deadline)
        if high > reached:
            self._ends[p] = max(self._ends[p], high)
            return False
        del self._ends[p]
        self._next.pop(p, None)
        self._done.append(p)
        return True

    def _reassign(self) -> None:
        if self._ends:
            self.reader.assign([TopicPartition(self.topic, p, self._next[p]) for p in self._ends])
            self._assigned = True
        elif self._assigned:
            self.reader.unassign()
            self._assigned = False


def restore_partitions(
    reader: Consumer,
    topic: str,
    partitions: Iterable[int],
    *,
    table: StateTable,
    model_version: str,
    timeout_s: float = 300.0,
    progress: Callable[[], None] = lambda: None,
) -> RestoreStats:
    """Restore to the end at once; `progress` is called after every slice."""
    target = TableTarget(table, model_version)
    restorer = Restorer(reader, topic, target=target, timeout_s=timeout_s)
    restorer.add(partitions)
    while True:
        _, stats = restorer.step(0.5)
        progress()
        if stats is not None:
            return stats


def _watermarks(reader: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """A partition's low and high watermarks. Transient errors are asked again until the
    restore's deadline: a changelog topic created a moment ago, or a broker coming back, answers
    "not leader" for a while."""
    while True:
        try:
            low, high = reader.get_watermark_offsets(tp, timeout=_ASK_S, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            err = exc.args[0]
            if not (broker_away(err) or err.code() == _NOT_YET) or time.monotonic() > deadline:
                raise
        time.sleep(_RETRY_S)
        refresh_metadata(reader, tp.topic)
