"""Several model versions at once: sequences finish on the version they started on."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import changelog as changelog_codec
from consumer.codecs.inputs import InputRecord
from consumer.codecs.outputs import FinalReason
from consumer.engine.results import BatchResult
from consumer.engine.state_table import EndedKey, StateTable
from consumer.engine.versions import ModelVersions
from consumer.model.step import Float32Array, StepFunction
from tests.prefix_sum_step import PrefixSumStep, prefix_outputs
from tests.stream_reference import record, reference_run, streams

Row = tuple[str, int, tuple[float, float], FinalReason | None, int]


class TenfoldStep(PrefixSumStep):
    """Another version: ten times the sum, and a state of another shape."""

    @property
    def version(self) -> str:
        return "tenfold"

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.n_features, 1, 2)

    def step(self, x: Float32Array, states: list[Float32Array]) -> Float32Array:
        sums, counts, extra = states
        sums += x
        counts += 1.0
        extra += 1.0
        return np.stack([10 * sums.sum(axis=1), counts[:, 0]], axis=1).astype(np.float32)


V1, V2 = PrefixSumStep().version, TenfoldStep().version
SCALE = {V1: 1.0, V2: 10.0}


def rows(results: list[tuple[str, BatchResult]]) -> list[tuple[str, Row]]:
    """(version, row) of every output, in emission order."""
    got = []
    for version, result in results:
        out = result.outputs
        for k, s, v, r, o in zip(
            out.keys, out.steps, out.values, out.reasons, out.offsets, strict=True
        ):
            got.append((version, (k, s, (float(v[0]), float(v[1])), r, o)))
    return got


def per_key(items: list[tuple[str, Row]]) -> dict[str, list[tuple[str, Row]]]:
    grouped: dict[str, list[tuple[str, Row]]] = {}
    for version, row in items:
        grouped.setdefault(row[0], []).append((version, row))
    return grouped


def sample(key: str, offset: int, *values: float, end: bool = False, reset: bool = False,
           partition: int = 0) -> InputRecord:  # fmt: skip
    return record(key, offset, [[v, 0.0, 0.0] for v in values], end=end, reset=reset,
                  partition=partition)  # fmt: skip


def test_sequences_started_before_a_rollout_finish_on_their_version() -> None:
    models = ModelVersions(PrefixSumStep())
    first = rows(models.process([sample("a", 0, 1), sample("b", 1, 2)], 0.0))
    assert [v for v, _ in first] == [V1, V1]
    assert models.switch(TenfoldStep()) == []  # drain: nothing ends at the switch
    got = per_key(rows(models.process(
        [sample("a", 2, 3), sample("c", 3, 1), sample("b", 4, 5, end=True), sample("b", 5, 1)],
        0.0,
    )))  # fmt: skip
    assert got["a"] == [(V1, ("a", 2, (4.0, 2.0), None, 2))]
    assert got["c"] == [(V2, ("c", 1, (10.0, 1.0), None, 3))]
    # b ends on v1 with its end marker; its next record starts a sequence on v2.
    assert got["b"] == [(V1, ("b", 2, (7.0, 2.0), "end", 4)), (V2, ("b", 1, (10.0, 1.0), None, 5))]
    assert models.sequences() == {V1: 1, V2: 2}


def test_a_reset_starts_the_new_sequence_on_the_current_version() -> None:
    models = ModelVersions(PrefixSumStep())
    models.process([sample("a", 0, 1, 2)], 0.0)
    models.switch(TenfoldStep())
    results = models.process([sample("a", 1, 4, reset=True)], 0.0)
    assert rows(results) == [(V2, ("a", 1, (40.0, 1.0), None, 1))]  # no final for a reset
    assert sum(r.ended["reset"] for _, r in results) == 1
    assert models.sequences() == {V1: 0, V2: 1}


def test_replays_and_strays_do_not_move_a_draining_sequence() -> None:
    models = ModelVersions(PrefixSumStep())
    models.process([sample("a", 0, 1), sample("a", 1, 1)], 0.0)
    models.switch(TenfoldStep())
    # A replayed reset, a replayed end and a reset from another partition change nothing.
    results = models.process(
        [sample("a", 0, 9, reset=True), sample("a", 1, 9, end=True),
         sample("a", 7, 9, reset=True, partition=1), sample("a", 2, 1)],
        0.0,
    )  # fmt: skip
    assert [r for _, r in rows(results)] == [("a", 3, (3.0, 3.0), None, 2)]
    assert sum(r.skipped for _, r in results) == 2
    assert [r.record.offset for _, res in results for r in res.rejected] == [7]
    assert models.sequences() == {V1: 1, V2: 0}


def test_a_replay_after_a_sequence_moved_is_still_skipped() -> None:
    models = ModelVersions(PrefixSumStep())
    models.process([sample("a", 0, 1)], 0.0)
    models.switch(TenfoldStep())
    models.process([sample("a", 1, 1, end=True)], 0.0)
    results = models.process([sample("a", 1, 1, end=True), sample("a", 2, 5)], 0.0)
    assert [r for _, r in rows(results)] == [("a", 1, (50.0, 1.0), None, 2)]
    assert sum(r.skipped for _, r in results) == 1


def test_restart_ends_every_old_sequence_with_a_model_changed_final() -> None:
    models = ModelVersions(PrefixSumStep(), policy="restart")
    models.process([sample("a", 0, 1, 2), sample("b", 1, 4)], 0.0)
    finals = rows(models.switch(TenfoldStep()))
    assert sorted(r for _, r in finals) == [
        ("a", 2, (3.0, 2.0), "model_changed", 0),
        ("b", 1, (4.0, 1.0), "model_changed", 1),
    ]
    assert {v for v, _ in finals} == {V1}
    got = rows(models.process([sample("a", 2, 1)], 0.0))
    assert got == [(V2, ("a", 1, (10.0, 1.0), None, 2))]


def test_a_rollback_resumes_the_draining_version_with_its_sequences() -> None:
    models = ModelVersions(PrefixSumStep())
    models.process([sample("a", 0, 1)], 0.0)
    models.switch(TenfoldStep())
    models.process([sample("b", 1, 1)], 0.0)
    models.switch(PrefixSumStep())
    got = per_key(rows(models.process([sample("a", 2, 1), sample("b", 3, 1)], 0.0)))
    assert got["a"] == [(V1, ("a", 2, (2.0, 2.0), None, 2))]
    assert got["b"] == [(V2, ("b", 2, (20.0, 2.0), None, 3))]


def test_a_drained_version_is_retired_once_its_ends_are_written_and_committed() -> None:
    models = ModelVersions(PrefixSumStep(), clock=lambda: 100.0)
    models.process([sample("a", 0, 1)], 0.0)
    models.switch(TenfoldStep())
    assert models.draining_since == {V1: 100.0}
    models.process([sample("a", 1, 1, end=True)], 0.0)
    assert models.retire_drained() == []  # its end record is neither written nor committed
    old = models.draining[V1].table
    old.take_dirty()
    assert models.retire_drained() == []
    old.ended.clear()  # what the changelog writer does once the input is committed past it
    assert models.retire_drained() == [V1]
    assert models.engines() == [models.current] and models.draining_since == {}


def test_idle_sequences_of_a_draining_version_are_evicted() -> None:
    models = ModelVersions(PrefixSumStep())
    models.process([sample("a", 0, 1)], 10.0)
    models.switch(TenfoldStep())
    models.process([sample("b", 1, 1)], 500.0)
    finals = rows(models.evict_idle(100.0, caught_up=[0], now=500.0))
    assert finals == [(V1, ("a", 1, (1.0, 1.0), "idle_timeout", 0))]


def written(models: ModelVersions) -> list[tuple[str, int, bytes]]:
    """What a checkpoint would write: every table's dirty keys, draining versions first."""
    records = []
    for engine in models.engines():
        table, version = engine.table, engine.step_fn.version
        for key in sorted(table.take_dirty()):
            slot = table.slot_of(key)
            if slot is not None:
                value = changelog_codec.encode_state(table, key, version)
                records.append((key, int(table.partition[slot]), value))
    return records


def two_versions_written() -> list[tuple[str, int, bytes]]:
    models = ModelVersions(PrefixSumStep())
    models.process([sample("old", 0, 1, 2)], 0.0)
    models.switch(TenfoldStep())
    models.process([sample("new", 1, 3)], 0.0)
    return written(models)


def restore(models: ModelVersions, records: list[tuple[str, int, bytes]]) -> list[str]:
    keys, parts, values = zip(*records, strict=True)
    return list(models.apply_changelog(list(keys), list(parts), list(values)))


def test_a_restore_puts_each_state_on_its_version_loaded_from_the_store() -> None:
    asked: list[str] = []

    def load(version: str) -> StepFunction | None:
        asked.append(version)
        return PrefixSumStep() if version == V1 else None

    models = ModelVersions(TenfoldStep(), load_version=load)
    assert restore(models, two_versions_written()) == ["restored", "restored"]
    assert asked == [V1] and models.sequences() == {V1: 1, V2: 1}
    assert models.take_finals() == []
    got = per_key(rows(models.process([sample("old", 2, 1), sample("new", 3, 1)], 0.0)))
    assert got["old"] == [(V1, ("old", 3, (4.0, 3.0), None, 2))]
    assert got["new"] == [(V2, ("new", 2, (40.0, 2.0), None, 3))]


@pytest.mark.parametrize(("policy", "reason"), [("drain", "model_unavailable"),
                                                ("restart", "model_changed")])  # fmt: skip
def test_a_restored_state_the_worker_cannot_serve_ends_with_a_final(
    policy: str, reason: str
) -> None:
    asked: list[str] = []

    def load(version: str) -> StepFunction | None:
        # drain: the version's file is gone from the store; restart: it would be there.
        asked.append(version)
        return None if policy == "drain" else PrefixSumStep()

    models = ModelVersions(TenfoldStep(), policy=policy, load_version=load)  # type: ignore[arg-type]
    assert restore(models, two_versions_written()) == ["version_mismatch", "restored"]
    assert asked == ([V1] if policy == "drain" else [])  # restart serves no old version
    finals = rows(models.take_finals())
    assert finals == [(V1, ("old", 2, (3.0, 2.0), reason, 0))]
    assert models.current.table.ended["old"].offset == 0  # replays of it are skipped
    assert "old" in models.current.table.dirty  # and its end reaches the changelog
    got = rows(models.process([sample("old", 0, 9), sample("old", 2, 1)], 0.0))
    assert got == [(V2, ("old", 1, (10.0, 1.0), None, 2))]


def test_a_newer_record_of_another_version_replaces_a_restored_state() -> None:
    models = ModelVersions(TenfoldStep(), load_version=lambda v: PrefixSumStep())
    first, _ = two_versions_written()
    restore(models, [first])
    assert models.sequences() == {V1: 1, V2: 0}
    newer = ModelVersions(TenfoldStep())
    newer.process([sample("old", 5, 2)], 0.0)
    restore(models, written(newer))
    assert models.sequences() == {V1: 0, V2: 1}


def test_a_version_reading_other_features_is_not_served() -> None:
    models = ModelVersions(TenfoldStep(), load_version=lambda v: PrefixSumStep(n_features=4))
    assert restore(models, two_versions_written())[0] == "version_mismatch"
    assert rows(models.take_finals())[0][1][3] == "model_unavailable"


@settings(max_examples=200, deadline=None)
@given(
    records=st.sampled_from([1, 2]).flatmap(
        lambda p: streams(
            keys=8, min_records=10, max_records=60, partitions=p, replays=True, strays=True
        )
    ),
    batch=st.integers(1, 16),
    switch_at=st.integers(0, 60),
)
def test_any_stream_and_rollout_point_gives_each_sequence_its_start_version(
    records: list[InputRecord], batch: int, switch_at: int
) -> None:
    """The record-by-record semantics, each sequence's outputs computed by the version that
    was current when its first sample was applied (the switch falls between batches)."""
    models = ModelVersions(PrefixSumStep())
    got: list[tuple[str, Row]] = []
    switch_batch = switch_at // batch
    for n, i in enumerate(range(0, len(records), batch)):
        if n == switch_batch:
            models.switch(TenfoldStep())
        got += rows(models.process(records[i : i + batch], 0.0))
    first_after = switch_batch * batch  # index of the first record after the switch
    # The record each output came from: the first read of its offset on the key's partition (a
    # replay is skipped, a record on another partition refused).
    homes: dict[str, int] = {}
    first_read: dict[tuple[str, int], int] = {}
    for i, r in enumerate(records):
        if r.features:
            homes.setdefault(r.key, r.partition)
        if homes.get(r.key) == r.partition:
            first_read.setdefault((r.key, r.offset), i)
    expected: list[tuple[str, Row]] = []
    started: dict[str, str] = {}
    for e in reference_run(records).outputs:
        at = first_read[e.key, e.offset]
        if e.step == 1 and records[at].features:  # a sequence starts (a bare end repeats)
            started[e.key] = V2 if at >= first_after else V1  # the version current then
        version = started[e.key]
        total, count = prefix_outputs([list(r) for r in e.prefix])
        reason = cast(FinalReason | None, e.reason)
        expected.append(
            (version, (e.key, e.step, (SCALE[version] * total, count), reason, e.offset))
        )
    assert per_key(got) == per_key(expected)


def encoded(kind: str, key: str, offset: int) -> bytes | None:
    """A changelog record: a state of v1 or v2 at `offset`, an end, or a tombstone (None)."""
    if kind == "tomb":
        return None
    if kind == "end":
        return changelog_codec.encode_ended(EndedKey(0, offset), V1)
    step = PrefixSumStep() if kind == V1 else TenfoldStep()
    table = StateTable(step.state_sizes, step.n_outputs)
    slot = table.allocate(key, 0)
    table.last_offset[slot] = offset
    table.steps[slot] = 1
    return changelog_codec.encode_state(table, key, kind)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from([V1, V2, "end", "tomb"]),
            st.integers(0, 1000),
        ),
        min_size=1,
        max_size=40,
    ),
    cut=st.integers(1, 12),
)
def test_a_restore_leaves_each_key_where_its_newest_record_says(
    ops: list[tuple[str, str, int]], cut: int
) -> None:
    models = ModelVersions(TenfoldStep(), load_version=lambda v: PrefixSumStep())
    records = [(key, 0, encoded(kind, key, offset)) for key, kind, offset in ops]
    for i in range(0, len(records), cut):
        keys, parts, values = zip(*records[i : i + cut], strict=True)
        models.apply_changelog(list(keys), list(parts), list(values))
    newest = {key: (kind, offset) for key, kind, offset in ops}
    tables = {V2: models.current.table}
    if V1 in models.draining:
        tables[V1] = models.draining[V1].table
    for key, (kind, offset) in newest.items():
        live = {v for v, t in tables.items() if key in t}
        assert live == ({kind} if kind in (V1, V2) else set()), (key, kind)
        if kind in (V1, V2):
            table = tables[kind]
            slot = table.slot_of(key)
            assert slot is not None and int(table.last_offset[slot]) == offset
        ended = models.current.table.ended.get(key)
        assert (ended.offset if ended else None) == (offset if kind == "end" else None)
    assert models.take_finals() == []
