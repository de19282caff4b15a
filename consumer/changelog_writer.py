"""What a checkpoint writes to the changelog: the newest state of every key changed since the
last one, "ended" records, and tombstones once the input is committed past a sequence's end.

A sequence that ended is first written as an "ended at offset X" record, and replaced by a
tombstone once the input offsets are committed past X, so a replay never resurrects it.

Records are written only for partitions owned at the moment they are written: a state or
tombstone queued for a partition that was revoked or lost since would overwrite what its new
owner wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np

from consumer.codecs import changelog as changelog_codec
from consumer.engine.state_table import StateTable
from consumer.metrics import Metrics
from consumer.sink import Sink

Positions = dict[int, int]  # input partition -> next offset to read
# Every state table with the model version its states belong to, in the order to write them.
Tables = Callable[[], Sequence[tuple[StateTable, str]]]


class ChangelogWriter:
    def __init__(self, *, sink: Sink, tables: Tables, topic: str, metrics: Metrics) -> None:
        self.sink = sink
        self.tables = tables
        self.topic = topic
        self.metrics = metrics
        self._tombstones: dict[str, int] = {}  # key -> changelog partition

    def pending(self) -> bool:
        """Whether tombstones wait for the next checkpoint."""
        return bool(self._tombstones)

    def forget_pending(self) -> None:
        """After a rewind the changelog is read again; pending tombstones are re-derived."""
        self._tombstones.clear()

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Revoked or lost: their pending tombstones are the next owner's to write."""
        gone = set(partitions)
        self._tombstones = {k: p for k, p in self._tombstones.items() if p not in gone}

    def write(self, owned: Collection[int]) -> None:
        """Hand the changed keys' records and the pending tombstones to the sink."""
        tables = self.tables()
        written = 0
        for table, model_version in tables:
            live: list[str] = []
            for key in table.take_dirty():
                if key in table:
                    live.append(key)
                    continue
                ended = table.ended.get(key)
                # No slot and no end: dropped with its partition, the new owner writes it.
                if ended is not None and ended.partition in owned:
                    value = changelog_codec.encode_ended(ended, model_version)
                    self.sink.send(self.topic, value, key.encode(), ended.partition)
                    written += 1
            written += self._write_states(table, live, model_version, owned)
        for key, partition in self._tombstones.items():
            if partition in owned and not any(key in t or key in t.ended for t, _ in tables):
                self.sink.send(self.topic, None, key.encode(), partition)
                written += 1
        self._tombstones.clear()
        self.metrics.count_changelog(written)

    def _write_states(
        self, table: StateTable, keys: list[str], model_version: str, owned: Collection[int]
    ) -> int:
        """The live states of `keys` whose partitions are owned, encoded together."""
        slot_of = table.slot_of
        slots = np.fromiter((slot_of(k) for k in keys), np.intp, len(keys))
        partitions = table.partition[slots].tolist()
        kept = [i for i, p in enumerate(partitions) if p in owned]
        if len(kept) < len(keys):
            slots = slots[kept]
        values = changelog_codec.encode_states(table, slots, model_version)
        send, topic = self.sink.send, self.topic
        for i, value in zip(kept, values, strict=True):
            send(topic, value, keys[i].encode(), partitions[i])
        return len(kept)

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
