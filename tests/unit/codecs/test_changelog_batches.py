"""A batch of changelog records applied at once leaves the table exactly as the records applied
one by one do, with the same outcome for every record, whatever the mix of kinds and batches."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from consumer.codecs import changelog as changelog_codec
from consumer.engine.state_table import EndedKey, StateTable

SIZES = (3, 3, 2)
N_OUT = 2
VERSION = "abcd1234"
KEYS = ["a", "b", "c"]  # few keys: many records of one key, in one batch and across batches
KINDS = ["state", "state", "state", "other_version", "ended", "ended_other_version",
         "tombstone", "garbage", "empty", "wrong_shape", "short"]  # fmt: skip


def record(kind: str, key: str, seed: int) -> bytes | None:
    rng = np.random.default_rng(seed)
    sizes = (3, 2, 2) if kind == "wrong_shape" else SIZES
    table = StateTable(sizes, N_OUT)
    slot = table.allocate(key, 0)
    for arr in table.states:
        arr[slot] = rng.standard_normal(arr.shape[1], dtype=np.float32)
    table.last_output[slot] = rng.random(N_OUT, dtype=np.float32)
    table.steps[slot] = int(rng.integers(1, 1000))
    table.last_offset[slot] = int(rng.integers(0, 10**9))
    table.last_seen[slot] = float(rng.random() * 1e9)
    ended = EndedKey(0, int(rng.integers(0, 10**9)))
    version = "ffff0000" if kind in ("other_version", "ended_other_version") else VERSION
    if kind in ("state", "other_version", "wrong_shape"):
        return changelog_codec.encode_state(table, key, version)
    if kind in ("ended", "ended_other_version"):
        return changelog_codec.encode_ended(ended, version)
    if kind == "short":  # a state record cut one float short
        return changelog_codec.encode_state(table, key, version)[:-4]
    return {"tombstone": None, "garbage": b"LSS1garbage", "empty": b""}[kind]


def contents(table: StateTable) -> dict[str, Any]:
    rows = {}
    for key in table.active_keys():
        slot = table.slot_of(key)
        assert slot is not None and table.in_use[slot]
        rows[key] = (
            int(table.partition[slot]),
            int(table.steps[slot]),
            int(table.last_offset[slot]),
            float(table.last_seen[slot]),
            table.last_output[slot].tobytes(),
            b"".join(arr[slot].tobytes() for arr in table.states),
        )
    return {"rows": rows, "ended": dict(table.ended), "live": int(table.in_use.sum())}


def one_by_one(table: StateTable, batch: list[tuple[str, int, bytes | None]]) -> list[str]:
    outcomes: list[str] = []
    for key, partition, value in batch:
        if value is None:
            changelog_codec.forget(table, key)
            outcomes.append("tombstone")
        else:
            outcomes.append(changelog_codec.apply_record(table, key, partition, value, VERSION))
    return outcomes


def prefilled(keys: list[str]) -> StateTable:
    """A table with some keys already in it (from other partitions, say), capacity 1 to grow."""
    table = StateTable(SIZES, N_OUT, initial_capacity=1)
    for i, key in enumerate(keys):
        value = record("state", key, 1000 + i)
        assert value is not None
        changelog_codec.apply_record(table, key, 9, value, VERSION)
    return table


@settings(max_examples=500, deadline=None)
# A key that ended in one batch and lives again in the next: the end must not linger.
@example(stream=[("a", "ended", 0, 1), ("a", "state", 0, 2)], cuts=[1], before=[])
@example(stream=[("a", "state", 0, 1), ("a", "garbage", 0, 2)], cuts=[1], before=["a"])
# Live states only (one array for the batch), a key twice (on two partitions) and one known.
@example(
    stream=[("a", "state", 0, 1), ("b", "state", 1, 2), ("a", "state", 2, 3)], cuts=[], before=["b"]
)
@example(stream=[("a", "state", 0, 1), ("b", "state", 1, 2)], cuts=[1], before=[])
@given(
    stream=st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.sampled_from(KINDS),
            st.integers(0, 3),
            st.integers(0, 2**32 - 1),
        ),
        max_size=40,
    ),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    before=st.lists(st.sampled_from(KEYS), unique=True),
)
def test_batches_equal_records_one_by_one(
    stream: list[tuple[str, str, int, int]], cuts: list[int], before: list[str]
) -> None:
    records = [(key, partition, record(kind, key, seed)) for key, kind, partition, seed in stream]
    expected_table = prefilled(before)
    expected = one_by_one(expected_table, records)
    table = prefilled(before)
    got: list[str] = []
    bounds = [0, *sorted(c for c in cuts if c < len(records)), len(records)]
    for lo, hi in itertools.pairwise(bounds):
        batch = records[lo:hi]
        got += changelog_codec.apply_records(
            table, [k for k, _, _ in batch], [p for _, p, _ in batch],
            [v for _, _, v in batch], VERSION,
        )  # fmt: skip
    assert got == expected
    assert contents(table) == contents(expected_table)


@settings(max_examples=100, deadline=None)
@given(
    stream=st.lists(
        st.tuples(
            st.sampled_from([*KEYS, "d", "e"]), st.sampled_from(KINDS), st.integers(0, 2**32 - 1)
        ),
        max_size=30,
    ),
    batch=st.integers(1, 8),
    extra=st.integers(0, 5),
)
def test_a_table_restored_into_ends_as_one_grown_on_the_way(
    stream: list[tuple[str, str, int]], batch: int, extra: int
) -> None:
    # While restoring, the table reserves the rows the records can fill and maps them as they
    # fill; the mapped rows it does not fill must hold what a table grown by doubling holds,
    # before and after the rows the restore did not use are given back.
    records = [(key, 0, record(kind, key, seed)) for key, kind, seed in stream]
    grown, restored = prefilled(["a"]), prefilled(["a"])
    restored.expect(len(records) + extra)
    for table in (grown, restored):
        for lo in range(0, len(records), batch):
            part = records[lo : lo + batch]
            changelog_codec.apply_records(
                table, [k for k, _, _ in part], [p for _, p, _ in part],
                [v for _, _, v in part], VERSION,
            )  # fmt: skip
    assert restored.capacity <= 1 + len(records) + extra
    for check in ("restoring", "fitted"):
        assert contents(restored) == contents(grown), check
        unused = slice(restored._high_water, restored._mapped)
        assert (restored.last_offset[unused] == -1).all() and not restored.steps[unused].any()
        restored.fit()
    # Rows reserved and never mapped are handed out as a grown table's are.
    for table in (grown, restored):
        for i in range(restored.capacity - restored._high_water + 2):
            table.allocate(f"new-{i}", 1)
    assert contents(restored) == contents(grown)


def test_the_common_layout_is_read_as_one_array() -> None:
    # The fast path's layout is the record format itself: a change to either breaks this.
    value = record("state", "a", 1)
    assert value is not None
    head = len(VERSION) + 6
    assert changelog_codec._layout(head, N_OUT + sum(SIZES)).itemsize == len(value)
    table = StateTable(SIZES, N_OUT)
    assert changelog_codec.apply_records(table, ["a", "b"], [0, 1], [value, value], VERSION) == [
        "restored",
        "restored",
    ]
    assert contents(table)["rows"]["a"][1:] == contents(table)["rows"]["b"][1:]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    n_out=st.integers(1, 3),
    n_keys=st.integers(0, 12),
    version=st.sampled_from(["abcd1234", "", "v2-long-version-name"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_states_encoded_together_equal_each_encoded_alone(
    sizes: list[int], n_out: int, n_keys: int, version: str, seed: int
) -> None:
    """The checkpoint encodes every changed key at once; each record must be byte for byte the
    record `encode_state` writes (what a restore of either reads)."""
    rng = np.random.default_rng(seed)
    table = StateTable(tuple(sizes), n_out, initial_capacity=2)
    keys = [f"k{i}" for i in range(n_keys)]
    for i, key in enumerate(keys):
        slot = table.allocate(key, i % 3)
        for arr in table.states:
            arr[slot] = rng.standard_normal(arr.shape[1], dtype=np.float32)
        table.last_output[slot] = rng.random(n_out, dtype=np.float32)
        table.steps[slot] = rng.integers(0, 2**31 - 1)
        table.last_offset[slot] = rng.integers(-1, 2**62)
        table.last_seen[slot] = rng.random() * 2e9
    order = rng.permutation(n_keys)  # any order of slots, repeats of none
    picked = [keys[i] for i in order]
    slots = np.asarray([table.slot_of(k) for k in picked], np.intp)
    together = changelog_codec.encode_states(table, slots, version)
    assert together == [changelog_codec.encode_state(table, k, version) for k in picked]
