"""What a checkpoint writes to the changelog: the newest state of every key changed since the
last one, "ended" records, and tombstones once the input is committed past a sequence's end.

A sequence that ended is first written as an "ended at offset X" record, and replaced by a
tombstone once the input offsets are committed past X, so a replay never resurrects it.

A snapshot copies the changed keys' states at once and may hand them to the producer later, a
slice at a time (`send_some`), so that an at-least-once checkpoint does not hold the loop while a
burst of state records is encoded and produced. The next snapshot sends what is left first, so the
records of one key reach its changelog partition in the order they were taken.

Records are handed over only for partitions owned at that moment: a state or tombstone queued for
a partition that was revoked or lost since would overwrite what its new owner wrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from consumer.codecs import changelog as changelog_codec
from consumer.engine.state_table import StateTable
from consumer.metrics import Metrics
from consumer.sink import Sink

Positions = dict[int, int]  # input partition -> next offset to read
# Every state table with the model version its states belong to, in the order to write them.
Tables = Callable[[], Sequence[tuple[StateTable, str]]]
_SLICES = 16  # a snapshot is sent over about this many loop iterations
_MIN_SLICE = 512


@dataclass
class _Unsent:
    """State records of one snapshot (one table) not yet handed to the producer."""

    rows: npt.NDArray[np.void]
    keys: list[bytes]
    partitions: npt.NDArray[np.int32]
    sent: int = 0

    def left(self) -> int:
        return len(self.keys) - self.sent


class ChangelogWriter:
    def __init__(self, *, sink: Sink, tables: Tables, topic: str, metrics: Metrics) -> None:
        self.sink = sink
        self.tables = tables
        self.topic = topic
        self.metrics = metrics
        self._tombstones: dict[str, int] = {}  # key -> changelog partition
        self._unsent: list[_Unsent] = []
        self._slice = _MIN_SLICE

    def pending(self) -> bool:
        """Whether tombstones or state records wait to be written."""
        return bool(self._tombstones) or bool(self._unsent)

    def unsent(self) -> int:
        """State records snapshotted but not yet handed to the producer."""
        return sum(u.left() for u in self._unsent)

    def forget_pending(self) -> None:
        """After a rewind the changelog is read again; pending records are re-derived."""
        self._tombstones.clear()
        self._unsent.clear()

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Revoked or lost: their pending records are the next owner's to write."""
        gone = set(partitions)
        self._tombstones = {k: p for k, p in self._tombstones.items() if p not in gone}
        wanted = np.fromiter(gone, np.int32, len(gone))
        kept = []
        for u in self._unsent:
            keep = ~np.isin(u.partitions[u.sent :], wanted)
            rows, keys = u.rows[u.sent :][keep], u.keys[u.sent :]
            if len(rows):
                picked = [k for k, good in zip(keys, keep.tolist(), strict=True) if good]
                kept.append(_Unsent(rows, picked, u.partitions[u.sent :][keep]))
        self._unsent = kept

    def write(self, owned: Collection[int]) -> None:
        """Hand every pending record and a snapshot of the changed keys to the sink, now."""
        self.snapshot(owned)
        self.send_unsent(owned)

    def snapshot(self, owned: Collection[int]) -> None:
        """Take the changed keys' states (sent later, by `send_some` or `send_unsent`); hand the
        "ended" records and the pending tombstones to the sink at once (they are few)."""
        self.send_unsent(owned)  # a key's older record must not follow its newer one
        tables = self.tables()
        written = 0
        for table, model_version in tables:
            changes = table.take_changes()
            for key in changes.ended:
                ended = table.ended.get(key)
                # No end: dropped with its partition (the new owner writes it), or started
                # again (its state is among the changed slots).
                if ended is not None and ended.partition in owned:
                    value = changelog_codec.encode_ended(ended, model_version)
                    self.sink.send(self.topic, value, key.encode(), ended.partition)
                    written += 1
            self._take_states(table, changes.slots, model_version, owned)
        for key, partition in self._tombstones.items():
            if partition in owned and not any(key in t or key in t.ended for t, _ in tables):
                self.sink.send(self.topic, None, key.encode(), partition)
                written += 1
        self._tombstones.clear()
        self._slice = max(_MIN_SLICE, math.ceil(self.unsent() / _SLICES))
        self.metrics.count_changelog(written)

    def send_some(self, owned: Collection[int]) -> None:
        """Hand the next slice of the snapshot's state records to the sink."""
        self.send_unsent(owned, self._slice)

    def send_unsent(self, owned: Collection[int], limit: int | None = None) -> None:
        """Hand the snapshot's state records to the sink: all of them, or up to `limit`."""
        left = math.inf if limit is None else limit
        wanted = np.fromiter(owned, np.int32, len(owned))
        send, topic, written = self.sink.send, self.topic, 0
        while self._unsent and left > 0:
            u = self._unsent[0]
            end = u.sent + int(min(left, u.left()))
            parts = u.partitions[u.sent : end]
            values = changelog_codec.cut_rows(u.rows[u.sent : end])
            for key, value, p, mine in zip(
                u.keys[u.sent : end],
                values,
                parts.tolist(),
                np.isin(parts, wanted).tolist(),
                strict=True,
            ):
                if mine:
                    send(topic, value, key, p)
                    written += 1
            left -= end - u.sent
            u.sent = end
            if not u.left():
                self._unsent.pop(0)
        self.metrics.count_changelog(written)

    def _take_states(
        self,
        table: StateTable,
        slots: npt.NDArray[np.intp],
        model_version: str,
        owned: Collection[int],
    ) -> None:
        """Copy the states and keys at `slots` whose partitions are owned, to be sent."""
        partitions = table.partition[slots]
        mine = np.isin(partitions, np.fromiter(owned, np.int32, len(owned)))
        if not mine.all():
            slots, partitions = slots[mine], partitions[mine]
        if len(slots):
            rows = changelog_codec.state_rows(table, slots, model_version)
            self._unsent.append(_Unsent(rows, table.raw_keys(slots), partitions))

    def committed(self, positions: Positions) -> None:
        """The input is committed up to `positions`: sequences ended before them get tombstones
        at the next checkpoint."""
        for table, _ in self.tables():
            ended = table.ended
            for key, e in list(ended.items()):
                position = positions.get(e.partition)
                if position is not None and e.offset < position:
                    del ended[key]
                    self._tombstones[key] = e.partition
