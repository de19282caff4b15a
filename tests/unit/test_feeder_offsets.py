"""Offsets the reliability feeder's producer delivered without reporting, read back in order."""

from __future__ import annotations

import pytest

from tests.reliability.feeder import placed

RECORDS = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"c", b"4")]


def test_unknown_offsets_are_filled_in_from_the_partitions_order() -> None:
    where = [(0, -1), (1, 7), (0, -1), (0, 12)]
    held = {0: [(b"a", b"1", 10), (b"a", b"3", 11), (b"c", b"4", 12)]}
    assert placed(RECORDS, where, held) == [(0, 10), (1, 7), (0, 11), (0, 12)]


def test_a_partition_holding_a_record_twice_is_an_error() -> None:
    where = [(0, -1), (1, 7), (0, 11), (0, 12)]
    held = {0: [(b"a", b"1", 10), (b"a", b"1", 11), (b"a", b"3", 12), (b"c", b"4", 13)]}
    with pytest.raises(AssertionError, match="holds 4 records, 3 were sent"):
        placed(RECORDS, where, held)


def test_a_reported_offset_that_disagrees_with_the_partition_is_an_error() -> None:
    where = [(0, -1), (1, 7), (0, 11), (0, 99)]
    held = {0: [(b"a", b"1", 10), (b"a", b"3", 11), (b"c", b"4", 12)]}
    with pytest.raises(AssertionError, match="not record 3"):
        placed(RECORDS, where, held)


def test_a_record_out_of_order_is_an_error() -> None:
    where = [(0, -1), (1, 7), (0, -1), (0, -1)]
    held = {0: [(b"a", b"3", 10), (b"a", b"1", 11), (b"c", b"4", 12)]}
    with pytest.raises(AssertionError, match="not record 0"):
        placed(RECORDS, where, held)
