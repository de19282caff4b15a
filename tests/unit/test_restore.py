"""Restoring state from the changelog: the newest record of a key is the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer import restore
from consumer.codecs import changelog as changelog_codec
from consumer.engine.state_table import StateTable
from consumer.restore import CorruptRecord, Restorer, TableTarget, restore_partitions
from tests.unit.kafka_fakes import CHANGELOG, FakeMessage, FakeReader

VERSION = "v1"


def _state(key: str, step: int, offset: int) -> tuple[bytes, bytes]:
    table = StateTable((3, 1), 2)
    slot = table.allocate(key, 0)
    table.steps[slot], table.last_offset[slot] = step, offset
    table.states[0][slot] = np.float32(step)
    return key.encode(), changelog_codec.encode_state(table, key, VERSION)


def _restore(reader: FakeReader) -> tuple[StateTable, list[CorruptRecord]]:
    table = StateTable((3, 1), 2)
    stats = restore_partitions(
        cast(Consumer, reader), CHANGELOG, sorted(reader.records), table=table,
        model_version=VERSION,
    )  # fmt: skip
    return table, list(stats.corrupt)


def test_a_corrupt_newest_record_leaves_no_older_state_and_is_reported() -> None:
    # The older state used to stay in place, silently, as if it were the key's latest.
    reader = FakeReader({0: [_state("a", 1, 10), _state("a", 2, 11), (b"a", b"LSS1garbage")]})
    table, corrupt = _restore(reader)
    assert "a" not in table  # the key starts fresh
    assert [(c.key, c.partition, c.offset) for c in corrupt] == [("a", 0, 2)]
    assert "truncated or malformed" in corrupt[0].reason


def test_a_corrupt_record_followed_by_a_good_one_is_no_loss() -> None:
    reader = FakeReader({0: [(b"a", b"junk"), _state("a", 2, 11)], 1: [(None, b"x")]})
    table, corrupt = _restore(reader)
    slot = table.slot_of("a")
    assert slot is not None and table.steps[slot] == 2
    assert [(c.key, c.partition, c.reason) for c in corrupt] == [(None, 1, "no key")]


def test_state_of_another_shape_is_reported_with_both_shapes() -> None:
    _, value = _state("a", 2, 11)
    table = StateTable((3, 2), 2)
    assert changelog_codec.apply_record(table, "a", 0, value, VERSION) == "corrupt"
    assert changelog_codec.corrupt_reason(table, value) == (
        "2 outputs and 4 state floats, the model has 2 and 5"
    )


def test_a_restore_goes_in_slices_and_partitions_finish_one_by_one() -> None:
    reader = FakeReader({0: [_state(f"k{i}", 1, i) for i in range(5)], 1: [_state("z", 1, 0)]})
    reader.per_consume = 2
    table = StateTable((3, 1), 2)
    restorer = Restorer(cast(Consumer, reader), CHANGELOG, target=TableTarget(table, VERSION))
    restorer.add([0, 1, 2])  # 2 has an empty changelog
    finished, stats = restorer.step(0.0)  # the smallest slice: one read
    assert (finished, stats) == ([2], None) and len(table) == 2
    seen: list[int] = []
    slices = 1
    while stats is None:
        finished, stats = restorer.step(0.0)
        seen += finished
        slices += 1
    assert sorted(seen) == [0, 1] and stats.records == 6 and len(table) == 6
    assert slices == 3
    assert not restorer.pending and reader.assigned == {}


@dataclass
class Resizes:
    capacities: list[int] = field(default_factory=list)  # each resize's rows (each copies)
    mapped: list[int] = field(default_factory=list)  # rows mapped after each resize or mapping


def _recorded_resizes(table: StateTable) -> Resizes:
    """The table's resizes and mappings from now on, in order."""
    seen = Resizes()
    resize, map_rows = table._resize, table._map_rows

    def recording(rows: int, *, populate: bool = False, reserve: bool = False) -> None:
        seen.capacities.append(rows)
        resize(rows, populate=populate, reserve=reserve)
        seen.mapped.append(table.mapped_rows)

    def mapping(stop: int) -> None:
        map_rows(stop)
        seen.mapped.append(table.mapped_rows)

    table._resize = recording  # type: ignore[method-assign]
    table._map_rows = mapping  # type: ignore[method-assign]
    return seen


def _restore_mapping_at_most_twice(
    table: StateTable,
    records: list[tuple[bytes | None, bytes | None]],
    per_consume: int,
    floor: int = 1,
) -> None:
    """Restore `records` (split over two partitions) into `table`, checking after each step that
    it maps at most twice the keys it holds (or twice `floor`)."""
    half = len(records) // 2
    reader = FakeReader({0: records[:half], 1: records[half:]})
    reader.per_consume = per_consume
    restorer = Restorer(cast(Consumer, reader), CHANGELOG, target=TableTarget(table, VERSION))
    restorer.add([0, 1])
    while restorer.step(1.0)[1] is None:
        assert table.mapped_rows <= 2 * max(len(table), floor)


def test_a_restore_maps_at_most_twice_its_keys_and_gives_back_what_it_did_not_fill() -> None:
    # 5,000 records of 600 keys (a changelog not yet compacted): room for every record would have
    # held eight times the table's memory through the restore, and after it.
    table = StateTable((3, 1), 2, initial_capacity=1)
    seen = _recorded_resizes(table)
    records: list[tuple[bytes | None, bytes | None]] = [
        _state(f"k{i % 600}", 1 + i // 600, i) for i in range(5000)
    ]
    _restore_mapping_at_most_twice(table, records, per_consume=1000)
    assert len(table) == 600 and max(seen.mapped) <= 1200
    assert table.capacity == 1024  # given back: at least the first table's size


def test_live_keys_past_what_a_restore_expected_grow_the_table_by_doubling() -> None:
    # Keys of partitions already owned keep coming while a restore runs; growing one row at a
    # time past the restore's bound would copy the table for every new key.
    table = StateTable((3, 1), 2, initial_capacity=1)
    seen = _recorded_resizes(table)
    table.expect(10)
    for i in range(1000):
        table.allocate(f"live{i}", 0)
    assert len(seen.mapped) <= 12 and table.capacity < 2000
    table.fit()  # nothing to give back: the restore's room was filled, the rest is doubling's
    assert len(seen.mapped) <= 12 and len(table) == 1000


def test_a_restore_into_a_new_table_copies_no_rows_and_maps_as_the_keys_come() -> None:
    # Growing by doubling copied the table at every doubling and mapped twice its memory in all:
    # a restore of 1,000,000 keys spent a second on mapping alone on this machine kind.
    table = StateTable((3, 1), 2, initial_capacity=1)
    seen = _recorded_resizes(table)
    records: list[tuple[bytes | None, bytes | None]] = [_state(f"k{i}", 1, i) for i in range(5000)]
    _restore_mapping_at_most_twice(table, records, per_consume=300, floor=300)
    assert seen.capacities == [5000]  # one reservation of the records' rows, nothing to copy
    assert seen.mapped == sorted(seen.mapped) and seen.mapped[-1] == table.mapped_rows == 5000
    assert len(seen.mapped) < 10  # a doubling at a time
    assert table.capacity == 5000 and len(table) == 5000  # all filled: nothing given back
    assert table.slots_of([f"k{i}" for i in range(5000)]).tolist() == list(range(5000))


def test_claimed_keys_keep_their_slots_and_new_ones_take_the_next_rows_without_gaps() -> None:
    table = StateTable((3, 1), 2, initial_capacity=8)
    first = table.claim(["a", "b", "c"], np.zeros(3, np.int32))
    assert first.tolist() == [0, 1, 2]
    # Room for the batch: new keys are numbered in one pass with the known ones among them.
    mixed = table.claim(["d", "b", "e"], np.array([1, 1, 1], np.int32))
    assert mixed.tolist() == [3, 1, 4]
    # No room: the table grows for the new keys only.
    grown = table.claim(["a", "f", "c", "g", "e", "h"], np.zeros(6, np.int32))
    assert grown.tolist() == [0, 5, 2, 6, 4, 7]
    assert table.capacity == 8
    assert [table.key_of(s) for s in range(8)] == ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert table.slots_of(["a", "b", "c", "d", "e", "f", "g", "h"]).tolist() == list(range(8))
    assert table.partition[:8].tolist() == [0, 1, 0, 1, 0, 0, 0, 0]  # each as last claimed
    assert len(table) == 8 and table.in_use[:8].all()


def test_an_abandoned_partition_stops_being_read() -> None:
    reader = FakeReader({0: [_state(f"k{i}", 1, i) for i in range(5)], 1: [_state("z", 1, 0)]})
    reader.per_consume = 1
    target = TableTarget(StateTable((3, 1), 2), VERSION)
    restorer = Restorer(cast(Consumer, reader), CHANGELOG, target=target)
    restorer.add([0, 1])
    restorer.abandon([0])
    assert set(reader.assigned) == {1}
    finished, stats = restorer.step(1.0)
    assert finished == [1] and stats is not None and stats.partitions == (1,)


class NotYetLeaderReader:
    """A changelog just created (or its leader's broker gone): the first watermark requests
    fail with `code`."""

    def __init__(self, refusals: int, code: int = KafkaError.NOT_LEADER_FOR_PARTITION) -> None:
        self.refusals = refusals
        self.code = code
        self.asked = 0

    def list_topics(self, topic: str, timeout: float) -> object:
        return object()

    def get_watermark_offsets(self, tp: object, timeout: float, cached: bool) -> tuple[int, int]:
        self.asked += 1
        if self.asked <= self.refusals:
            raise KafkaException(KafkaError(self.code))
        return 0, 0


def test_a_restore_waits_for_a_changelog_leader() -> None:
    # A worker creating the changelog topic and restoring from it at once used to die of
    # NOT_LEADER_FOR_PARTITION from the watermark request.
    reader = NotYetLeaderReader(refusals=2)
    table = StateTable((3, 1), 2)
    stats = restore.restore_partitions(
        cast(Consumer, reader), "changelog", [0], table=table, model_version="v"
    )
    assert stats.records == 0 and reader.asked == 3


@pytest.mark.parametrize(
    "code",
    [KafkaError._DESTROY_BROKER, KafkaError._UNKNOWN_PARTITION, KafkaError.OFFSET_NOT_AVAILABLE],
)
def test_a_restore_outlives_a_broker_that_died(code: int) -> None:
    # A SIGKILLed broker leaves the cluster's metadata; librdkafka then destroys its handle (a
    # watermark request in flight fails with _DESTROY_BROKER) and knows its partitions no more
    # until their new leaders are in its metadata (_UNKNOWN_PARTITION): the worker exited on both.
    # The partition's new leader then answers "Leader high watermark is not caught up"
    # (OFFSET_NOT_AVAILABLE) for a moment: a worker restoring then exited on that too.
    reader = NotYetLeaderReader(refusals=2, code=code)
    table = StateTable((3, 1), 2)
    stats = restore.restore_partitions(
        cast(Consumer, reader), "changelog", [0], table=table, model_version="v"
    )
    assert stats.records == 0 and reader.asked == 3


class BrokerAwayReader(FakeReader):
    """The first read returns the client's own report of a broker away: an error message of no
    partition, as librdkafka hands one to consume()."""

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.consumed == 0:
            self.consumed += 1
            error = KafkaError(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:9092 failed")
            return [FakeMessage(None, None, partition=None, offset=None, error=error)]
        return super().consume(num_messages, timeout)


def test_a_broker_away_during_a_restore_is_waited_out() -> None:
    # The worker used to stop on an assertion: the error message has no partition.
    reader = BrokerAwayReader(records={0: [_state("a", 3, 10), _state("b", 1, 11)]})
    table, corrupt = _restore(reader)
    assert corrupt == [] and len(table) == 2
    slot = table.slot_of("a")
    assert slot is not None and int(table.steps[slot]) == 3


def test_a_fatal_reader_error_during_a_restore_is_raised() -> None:
    class FatalReader(FakeReader):
        def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
            error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
            return [FakeMessage(None, None, partition=0, offset=None, error=error)]

    reader = FatalReader(records={0: [_state("a", 3, 10)]})
    try:
        _restore(reader)
    except KafkaException as exc:
        assert exc.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    else:
        raise AssertionError("a fatal error was not raised")


class DeadLeaderReader:
    """The changelog's leader was SIGKILLed at time 0: an ask sent to it takes its whole timeout
    and fails; the controller moves the leadership 9 s later (broker.session.timeout.ms), and the
    reader learns of it at its next metadata refresh. Time is counted, not slept."""

    ELECTED_AT = 9.0

    def __init__(self) -> None:
        self.clock = 0.0
        self.refreshed_at: list[float] = []

    def list_topics(self, topic: str, timeout: float) -> object:
        self.refreshed_at.append(self.clock)
        return object()

    def get_watermark_offsets(self, tp: object, timeout: float, cached: bool) -> tuple[int, int]:
        if not any(t >= self.ELECTED_AT for t in self.refreshed_at):
            self.clock += timeout
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return 0, 0


def test_a_restore_finds_the_new_leader_within_one_ask_of_its_election() -> None:
    # Asks of 30 s held a restore (and the poll loop, in the assignment callback) 30 s after a
    # changelog leader died, 21 s after its successor was elected.
    reader = DeadLeaderReader()
    table = StateTable((3, 1), 2)
    restore.restore_partitions(
        cast(Consumer, reader), "changelog", [0], table=table, model_version="v"
    )
    assert reader.clock <= DeadLeaderReader.ELECTED_AT + 5.0


class StaleLeaderReader(FakeReader):
    """A reader that still fetches from a changelog leader which died: nothing arrives (and the
    watermarks fail) until it asks the brokers for the partition's leaders again."""

    refreshed: int = 0

    def list_topics(self, topic: str, timeout: float) -> object:
        self.refreshed += 1
        return object()

    def get_watermark_offsets(self, tp: TopicPartition, **kw: object) -> tuple[int, int]:
        if not self.refreshed:
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
        return super().get_watermark_offsets(tp, **kw)

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.refreshed < 2:
            return []
        return super().consume(num_messages, timeout)


def test_a_restore_from_a_leader_that_died_asks_for_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker restoring while the changelog leader's broker was SIGKILLed read nothing for four
    # and a half minutes: until librdkafka's periodic metadata refresh found the new leader.
    monkeypatch.setattr(restore, "_STALL_S", 0.0)
    reader = StaleLeaderReader(records={0: [_state("a", 3, 10)]})
    table, corrupt = _restore(reader)
    assert corrupt == [] and len(table) == 1
    assert reader.refreshed >= 2  # once for the watermarks, once for the reads


class LaggingLeaderReader(FakeReader):
    """A changelog leader killed during the restore: the new leader's high watermark lags the old
    one's for a moment, so the reader first hears "end of partition" before the restore's end
    offset, then the rest once the new leader's watermark catches up."""

    def __init__(
        self, records: dict[int, list[tuple[bytes | None, bytes | None]]], at: int
    ) -> None:
        super().__init__(records=records, per_consume=at)
        self.at = at
        self.eof_sent = False

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if not self.eof_sent and self.assigned.get(0) == self.at:
            self.eof_sent = True
            eof = KafkaError(KafkaError._PARTITION_EOF)
            return [FakeMessage(None, None, partition=0, offset=self.at, topic=CHANGELOG,
                                error=eof)]  # fmt: skip
        return super().consume(num_messages, timeout)


def test_an_end_of_partition_before_the_restores_end_offset_is_read_past() -> None:
    # The restore took the partition as done at the early "end of partition": the keys whose
    # newest records came after it kept older states, and the replay after the restore gave
    # outputs with wrong steps and lost others (found by the broker-killed-during-restore
    # scenario).
    records: list[tuple[bytes | None, bytes | None]] = [
        _state("a", 1, 10),
        _state("b", 1, 11),
        _state("a", 2, 12),
        _state("b", 2, 13),
    ]
    reader = LaggingLeaderReader({0: records}, at=2)
    table, _ = _restore(reader)
    assert reader.eof_sent
    for key in ("a", "b"):
        slot = table.slot_of(key)
        assert slot is not None and int(table.steps[slot]) == 2, key


class LaggingWatermarkReader(FakeReader):
    """The first watermark answer comes from a leader just elected, whose high watermark lags."""

    def __init__(self, records: dict[int, list[tuple[bytes | None, bytes | None]]]) -> None:
        super().__init__(records=records)
        self.answers = 0

    def get_watermark_offsets(self, tp: TopicPartition, **_: object) -> tuple[int, int]:
        self.answers += 1
        low, high = super().get_watermark_offsets(tp)
        return (low, 2) if self.answers == 1 else (low, high)


def test_an_end_offset_asked_of_a_lagging_leader_is_asked_again_before_finishing() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [
        _state("a", 1, 10),
        _state("b", 1, 11),
        _state("a", 2, 12),
        _state("b", 2, 13),
    ]
    reader = LaggingWatermarkReader({0: records})
    table, _ = _restore(reader)
    assert reader.answers >= 2
    for key in ("a", "b"):
        slot = table.slot_of(key)
        assert slot is not None and int(table.steps[slot]) == 2, key


class AbortedDuringRestoreReader(FakeReader):
    """A read_committed changelog reader on a partition whose last writer died in a transaction:
    committed records, their commit marker, the open transaction's records, and, once the writer
    is fenced during the restore, an abort marker. The end asked at the start is the last stable
    offset (the open transaction's first record); the client skips markers and aborted records
    and reports the end of the partition once, where it stands."""

    def __init__(self, committed: list[tuple[bytes | None, bytes | None]], aborted: int) -> None:
        super().__init__(records={0: committed})
        self.open_from = len(committed) + 1  # after the commit marker
        self.end = self.open_from + aborted + 1  # after the abort marker
        self.aborted = False
        self.eofs: list[int] = []

    def get_watermark_offsets(self, tp: TopicPartition, **_: object) -> tuple[int, int]:
        return 0, self.end if self.aborted else self.open_from

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.aborted = True  # the departed writer is fenced as the reading starts
        if self.assigned.get(0) != len(self.records[0]):
            return super().consume(num_messages, timeout)
        if self.eofs:
            return []  # the client reports an end once per offset
        self.assigned[0] = self.end
        self.eofs.append(self.end)
        eof = KafkaError(KafkaError._PARTITION_EOF)
        return [FakeMessage(None, None, partition=0, offset=self.end, topic=CHANGELOG, error=eof)]


def test_a_transaction_aborted_during_the_restore_does_not_hold_it_forever() -> None:
    # The restore's end, asked while a departed writer's transaction was open, was below the
    # abort marker appended when it was fenced; the reader's end of partition came past the
    # marker, the end was raised to that watermark and the restore then waited for records
    # that never came (failover under exactly-once: no output of the moved partitions).
    committed: list[tuple[bytes | None, bytes | None]] = [
        _state("a", 1, 10),
        _state("b", 1, 11),
        _state("a", 2, 12),
    ]
    reader = AbortedDuringRestoreReader(committed, aborted=2)
    table = StateTable((3, 1), 2)
    stats = restore_partitions(
        cast(Consumer, reader), CHANGELOG, [0], table=table, model_version=VERSION,
        timeout_s=2.0,
    )  # fmt: skip
    assert reader.eofs == [7]
    assert stats.records == 3
    assert [int(table.steps[cast(int, table.slot_of(k))]) for k in ("a", "b")] == [2, 1]
