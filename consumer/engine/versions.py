"""Every model version a worker serves at once: the current one, on which new sequences start,
and the draining ones, which still hold sequences that started before a rollout.

Each version has an engine and a state table of its own (two versions may differ in state
shape). A key live on a draining version keeps stepping there until its sequence ends (end
marker, `max_steps`, idle timeout); its records after the end go to the current version, and so
does a `reset` record: it ends the old sequence (as a reset always does, without a final) and
starts the new one. With one version, as between rollouts, a batch goes straight to its engine.

Policy `restart` ends every live sequence of the old version at the switch instead, each with a
`model_changed` final. A restored state whose version the worker cannot load (or, under
`restart`, any version but the current) ends with a final too: `model_unavailable` or
`model_changed`, never silently.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from consumer.codecs import changelog as changelog_codec
from consumer.codecs.changelog import ChangelogOutcome
from consumer.codecs.input_batch import DecodedBatch
from consumer.codecs.inputs import InputRecord
from consumer.codecs.outputs import FinalReason
from consumer.engine.results import BatchResult, EndReason, Outputs
from consumer.engine.scoring import Engine, Times, record_times
from consumer.engine.state_table import EndedKey, StateTable
from consumer.model.step import StepFunction
from consumer.model.store import CHANGE_POLICIES, ChangePolicy

log = logging.getLogger("consumer.versions")

# A version's step function from the model store, or None when no file holds it any more.
VersionLoader = Callable[[str], StepFunction | None]
Results = list[tuple[str, BatchResult]]  # (model version, its result), in the order to emit


def _no_store(_version: str) -> StepFunction | None:
    return None


class ModelVersions:
    def __init__(
        self,
        step_fn: StepFunction,
        *,
        max_steps: int = 0,
        policy: ChangePolicy = "drain",
        load_version: VersionLoader = _no_store,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if policy not in CHANGE_POLICIES:
            raise ValueError(f"unknown model change policy {policy!r}")
        self.max_steps = max_steps
        self.policy = policy
        self._load_version = load_version
        self._clock = clock
        self.current = self._engine(step_fn)
        self.draining: dict[str, Engine] = {}
        self.draining_since: dict[str, float] = {}
        self._unavailable: set[str] = set()  # versions the store did not have, until a reload
        self._finals: Results = []  # restore finals, for the caller to emit

    def _engine(self, step_fn: StepFunction) -> Engine:
        table = StateTable(step_fn.state_sizes, step_fn.n_outputs)
        return Engine(step_fn, table, max_steps=self.max_steps)

    @property
    def version(self) -> str:
        """The current version: new sequences start on it."""
        return self.current.step_fn.version

    def engines(self) -> list[Engine]:
        """Every engine, draining ones first: the order their changelog records are written in,
        so a key that moved to the current version has its newest record last."""
        return [*self.draining.values(), self.current]

    def __len__(self) -> int:
        return sum(len(e.table) for e in self.engines())

    def nbytes(self) -> int:
        return sum(e.table.nbytes() for e in self.engines())

    def sequences(self) -> dict[str, int]:
        """Live sequences per version."""
        return {e.step_fn.version: len(e.table) for e in self.engines()}

    def drop_partitions(self, partitions: Sequence[int]) -> int:
        return sum(e.table.drop_partitions(partitions) for e in self.engines())

    def take_dirty(self) -> None:
        for e in self.engines():
            e.table.take_changes()

    # -- scoring -------------------------------------------------------------------------------

    def process_batch(self, batch: DecodedBatch) -> Results:
        """`process` for a batch decoded by `decode_batch`: columns while no rollout drains."""
        if not self.draining:
            return [(self.current.step_fn.version, self.current.process_batch(batch))]
        return self.process(*batch.in_order())

    def process(self, records: Sequence[InputRecord], times: Times) -> Results:
        current = self.current
        if not self.draining:
            return [(current.step_fn.version, current.process(records, times))]
        seen = record_times(times, len(records))
        parts = np.array([r.partition for r in records], np.int64)
        routes: dict[str, list[int]] = {}
        to_current: list[int] = []
        where: dict[str, _Route] = {}
        for i, rec in enumerate(records):
            route = where.get(rec.key)
            if route is None:
                route = where[rec.key] = self._route(rec.key)
            if route.version is None:
                to_current.append(i)
                continue
            # Only a record the old sequence would apply moves it: a replay or a record on
            # another partition is skipped or refused there, as without a rollout.
            applies = rec.partition == route.home and rec.offset > route.last
            if applies and rec.reset:
                route.version, route.by_reset = None, True
                to_current.append(i)
                continue
            routes.setdefault(route.version, []).append(i)
            if applies:
                route.last = rec.offset
                if rec.end:  # the sequence ends here: what follows is a new one
                    route.version = None
        results: Results = []
        for version, idx in routes.items():
            engine = self.draining[version]
            results.append((version, engine.process([records[i] for i in idx], seen[idx])))
        for engine in self.draining.values():
            # Idleness on a draining version is judged on its partitions' stream time too.
            engine.table.advance_stream_time(parts, seen)
        results.extend(self._hand_over(where))
        batch = [records[i] for i in to_current]
        results.append((current.step_fn.version, current.process(batch, seen[to_current])))
        return results

    def _route(self, key: str) -> _Route:
        for version, engine in self.draining.items():
            table = engine.table
            slot = table.slot_of(key)
            if slot is not None:
                return _Route(version, int(table.partition[slot]), int(table.last_offset[slot]))
        return _Route(None, -1, -1)

    def _hand_over(self, where: dict[str, _Route]) -> Results:
        """Keys bound for the current version: a reset ends the old sequence; the offset where
        a key's old sequence ended goes along, so a replay of its records is still skipped."""
        resets: Counter[str] = Counter()
        current = self.current.table
        for version, engine in self.draining.items():
            table = engine.table
            for key, route in where.items():
                if route.version is not None:
                    continue  # still on its draining version
                if route.by_reset and (slot := table.slot_of(key)) is not None:
                    table.end(key, int(table.last_offset[slot]))
                    resets[version] += 1
                gone = table.ended.get(key)
                if gone is not None and key not in current and key not in current.ended:
                    current.ended[key] = gone
        return [
            (version, _counted({"reset": n}, self.draining[version].step_fn.n_outputs))
            for version, n in resets.items()
        ]

    def evict_idle(self, timeout_s: float, *, caught_up: Sequence[int], now: float) -> Results:
        return [
            (e.step_fn.version, e.evict_idle(timeout_s, caught_up=caught_up, now=now))
            for e in self.engines()
        ]

    # -- rollouts ------------------------------------------------------------------------------

    def switch(self, step_fn: StepFunction) -> Results:
        """Make `step_fn` the current version. Under `drain` the old one keeps its sequences
        until they end; under `restart` they end now, each with a `model_changed` final. A
        version that is draining becomes current again with its sequences (a rollback)."""
        old = self.current
        version = step_fn.version
        if version == old.step_fn.version:
            return []
        self._unavailable.clear()
        back = self.draining.pop(version, None)
        self.draining_since.pop(version, None)
        self.current = back if back is not None else self._engine(step_fn)
        finals: Results = []
        if self.policy == "restart":
            finals.append((old.step_fn.version, old.end_all("model_changed")))
        self.draining[old.step_fn.version] = old
        self.draining_since[old.step_fn.version] = self._clock()
        return finals

    def retire_drained(self) -> list[str]:
        """Forget draining versions with nothing left: no sequence, no end whose tombstone is
        still to be written, nothing unwritten. Returns their versions."""
        gone = [
            v
            for v, e in self.draining.items()
            if not len(e.table) and not e.table.ended and not e.table.has_changes()
        ]
        for v in gone:
            del self.draining[v]
            del self.draining_since[v]
        return gone

    # -- restore -------------------------------------------------------------------------------

    def apply_changelog(
        self, keys: Sequence[str], parts: Sequence[int], values: Sequence[bytes | None]
    ) -> list[ChangelogOutcome]:
        """Changelog records into the tables, in order (the newest record of a key wins). A
        state of another version goes to that version's table, loaded from the model store if
        need be; one the worker cannot serve ends with a final (`take_finals`)."""
        current = self.current
        version = current.step_fn.version
        outcomes = changelog_codec.apply_records(current.table, keys, parts, values, version)
        if not self.draining and "version_mismatch" not in outcomes:
            return outcomes
        newest = {key: i for i, key in enumerate(keys)}
        stale: dict[str, list[int]] = {}  # version -> its newest records, of a version not current
        for i in newest.values():
            if outcomes[i] == "version_mismatch":
                value = values[i]
                assert value is not None
                stale.setdefault(changelog_codec.record_version(value), []).append(i)
        if self.policy == "drain":
            for v in stale:
                self._draining_engine(v)
        for v, engine in self.draining.items():
            mine = stale.get(v, []) if self.policy == "drain" else []
            table, taken = engine.table, {keys[i] for i in mine}
            # The slice's newest record of every other key is of another version, an end or a
            # tombstone (applied to the current table above): the key leaves this table.
            for key in newest:
                if key not in taken and (key in table or key in table.ended):
                    changelog_codec.forget(table, key)
            if mine:
                found = changelog_codec.apply_records(
                    table, [keys[i] for i in mine], [parts[i] for i in mine],
                    [values[i] for i in mine], v,
                )  # fmt: skip
                for i, outcome in zip(mine, found, strict=True):
                    outcomes[i] = outcome
        reason: FinalReason = "model_changed" if self.policy == "restart" else "model_unavailable"
        for v, idx in stale.items():
            if self.policy == "restart" or v not in self.draining:
                self._finals.append((v, self._end_restored(idx, keys, parts, values, reason)))
        return outcomes

    def expect(self, records: int) -> None:
        """The keys a restore may bring, into the current table."""
        self.current.table.expect(records)

    def fit(self) -> None:
        self.current.table.fit()

    def corrupt_reason(self, value: bytes) -> str:
        """Why a record is corrupt, judged against the table of its own version if held."""
        table = self.current.table
        try:
            engine = self.draining.get(changelog_codec.record_version(value))
        except changelog_codec.CorruptSnapshotError:
            engine = None
        return changelog_codec.corrupt_reason(engine.table if engine else table, value)

    def _draining_engine(self, version: str) -> Engine | None:
        engine = self.draining.get(version)
        if engine is not None or version in self._unavailable:
            return engine
        step_fn = self._load_version(version)
        # Records are decoded with the current version's feature count: one that reads another
        # count cannot step them.
        features = self.current.step_fn.n_features
        if step_fn is None or step_fn.version != version or step_fn.n_features != features:
            self._unavailable.add(version)
            return None
        engine = self._engine(step_fn)
        self.draining[version] = engine
        self.draining_since[version] = self._clock()
        return engine

    def _end_restored(
        self,
        idx: list[int],
        keys: Sequence[str],
        parts: Sequence[int],
        values: Sequence[bytes | None],
        reason: FinalReason,
    ) -> BatchResult:
        """Restored states the worker cannot step: each ends with a final repeating its last
        output, and an end record, so a replay of its records is skipped."""
        snaps = []
        for i in idx:
            value = values[i]
            assert value is not None
            snaps.append(changelog_codec.decode(value))
        table = self.current.table
        out = Outputs(
            keys=[keys[i] for i in idx],
            steps=[s.step for s in snaps],
            values=np.stack([s.last_output for s in snaps]).astype(np.float32),
            reasons=[reason] * len(idx),
            partitions=[parts[i] for i in idx],
            offsets=[s.offset for s in snaps],
            ts=[None] * len(idx),
        )
        for key, part, offset in zip(out.keys, out.partitions, out.offsets, strict=True):
            table.ended[key] = EndedKey(part, offset)
            table.mark_ended(key)
        return BatchResult(out, 0, 0, 0, 0, Counter({reason: len(idx)}), 0.0)

    def take_finals(self) -> Results:
        """Finals of restored states that could not be served, since the last call."""
        finals, self._finals = self._finals, []
        return finals


class _Route:
    """Where a key's records of a batch go: its draining version (None: the current one), and
    its old sequence's partition and last applied offset, to tell which records it applies."""

    __slots__ = ("by_reset", "home", "last", "version")

    def __init__(self, version: str | None, home: int, last: int) -> None:
        self.version = version
        self.home = home
        self.last = last
        self.by_reset = False


def _counted(ended: dict[EndReason, int], n_outputs: int) -> BatchResult:
    out = Outputs(values=np.zeros((0, n_outputs), np.float32))
    return BatchResult(out, 0, 0, 0, 0, Counter(ended), 0.0)
