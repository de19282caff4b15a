"""A micro-batch of input records decoded at once, the common records as columns.

The common record is one sample without flags: `{"features": [a, b, c]}`, with `ts` or not. Those
are decoded by a typed msgspec decoder (types checked in C, the row's length fixed by the model)
and their features land in one float32 array, with no per-record Python object but the key.
Anything that decoder refuses or doubts (flags, chunks, a missing field, an unknown field, a
number beyond float32, a `ts` beyond 64 bits, a key that is not plain) goes through
`decode_input`, record by record, which alone decides a rejection and its reason: the fast path
only ever accepts, and only what `decode_input` accepts with the same values (a property test
holds it to that).

Unknown fields send a record to the slow path because msgspec skips their contents unchecked
(invalid UTF-8 or a number beyond a double in them would pass it), while the contract rejects
such a document whatever field holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt

from consumer.codecs.inputs import (
    FLOAT32_MAX,
    MAX_KEY_BYTES,
    InputRecord,
    Rejection,
    decode_input,
)
from consumer.model.step import Float32Array

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(slots=True)
class Samples:
    """The batch's plain records (one sample, no flags), column by column, in batch order."""

    keys: list[str]
    features: Float32Array  # (n, n_features)
    partitions: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    ts: list[int | None]  # the records' own `ts`, echoed on their outputs
    times: npt.NDArray[np.float64]  # record times (Kafka timestamps), seconds
    positions: npt.NDArray[np.intp]  # index of each in the batch

    def __len__(self) -> int:
        return len(self.keys)

    def record(self, i: int) -> InputRecord:
        """Row `i` as the record `decode_input` would have made."""
        row = [float(v) for v in self.features[i].tolist()]
        return InputRecord(
            self.keys[i],
            [row],
            False,
            False,
            self.ts[i],
            int(self.partitions[i]),
            int(self.offsets[i]),
        )


@dataclass(slots=True)
class DecodedBatch:
    """A micro-batch after decoding: plain samples as columns, other valid records as objects,
    rejections by position."""

    samples: Samples
    records: list[InputRecord] = field(default_factory=list)
    record_times: list[float] = field(default_factory=list)
    record_positions: list[int] = field(default_factory=list)
    rejections: list[tuple[int, Rejection]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples) + len(self.records)

    def in_order(self) -> tuple[list[InputRecord], npt.NDArray[np.float64]]:
        """Every valid record as an object, in batch order, with its record time."""
        return self.objects(range(len(self.samples)))

    def objects(self, rows: Iterable[int]) -> tuple[list[InputRecord], npt.NDArray[np.float64]]:
        """These sample rows and the other records, as objects in batch order, with times."""
        s = self.samples
        items = [(int(s.positions[i]), s.record(i), float(s.times[i])) for i in rows]
        items += zip(self.record_positions, self.records, self.record_times, strict=True)
        items.sort(key=lambda item: item[0])
        return [r for _, r, _ in items], np.asarray([t for _, _, t in items], np.float64)


# The ranges `decode_input` accepts, checked by the typed decoder itself (in C): a number beyond
# float32 or a `ts` beyond 64 bits makes it refuse, and `decode_input` then gives the reason.
_Feature = Annotated[float, msgspec.Meta(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
_Stamp = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]


@lru_cache(maxsize=8)
def _sample_decoder(n_features: int) -> msgspec.json.Decoder[Any]:
    row = tuple.__class_getitem__(tuple([_Feature] * n_features))
    sample = msgspec.defstruct(
        "Sample",
        [("features", row), ("ts", _Stamp | None, None)],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(sample)


def decode_batch(
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    partitions: Sequence[int],
    offsets: Sequence[int],
    times: npt.NDArray[np.float64],
    *,
    n_features: int,
    max_value_bytes: int,
) -> DecodedBatch:
    """Decode one micro-batch (rules: `consumer.codecs.inputs`); `times` are the record times."""
    n = len(values)
    decode = _sample_decoder(n_features).decode
    docs: list[Any]
    names: list[str] = []
    texts: Sequence[str | None]
    try:
        docs = [decode(v) for v in values]  # type: ignore[arg-type]
        usual = True
    except Exception:  # any record it doubts: find which, one by one
        docs = [_decoded_or_none(decode, v) for v in values]
        usual = False
    try:
        texts = names = [k.decode() for k in keys]  # type: ignore[union-attr]
    except (AttributeError, UnicodeDecodeError):
        texts = [_key_or_none(k) for k in keys]
        usual = False
    # The usual batch: every value a plain sample, every key text, keys and values within limits.
    usual = (
        usual
        and n > 0
        and min(map(len, names)) > 0
        and max(map(len, keys)) <= MAX_KEY_BYTES  # type: ignore[arg-type]
        and max(map(len, values)) <= max_value_bytes  # type: ignore[arg-type]
    )
    at = list(range(n)) if usual else _plain_positions(docs, texts, keys, values, max_value_bytes)
    chosen = docs if usual else [docs[i] for i in at]
    features = np.fromiter(
        chain.from_iterable([doc.features for doc in chosen]), np.float32, len(at) * n_features
    ).reshape(len(at), n_features)
    index = np.arange(n, dtype=np.intp) if usual else np.asarray(at, np.intp)
    samples = Samples(
        names if usual else [texts[i] for i in at],  # type: ignore[misc]
        features,
        np.asarray(partitions, np.int64)[index],
        np.asarray(offsets, np.int64)[index],
        [doc.ts for doc in chosen],
        times[index],
        index,
    )
    batch = DecodedBatch(samples)
    if len(at) == n:
        return batch
    taken = set(at)
    for i in range(n):
        if i in taken:
            continue
        item = decode_input(
            keys[i],
            values[i],
            n_features=n_features,
            partition=int(partitions[i]),
            offset=int(offsets[i]),
            max_value_bytes=max_value_bytes,
        )
        if isinstance(item, InputRecord):
            batch.records.append(item)
            batch.record_times.append(float(times[i]))
            batch.record_positions.append(i)
        else:
            batch.rejections.append((i, item))
    return batch


def _plain_positions(
    docs: list[Any],
    texts: Sequence[str | None],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    max_value_bytes: int,
) -> list[int]:
    """The records the typed decoder took whose key and value are within limits."""
    return [
        i
        for i, (doc, text, key, value) in enumerate(zip(docs, texts, keys, values, strict=True))
        if doc is not None
        and text is not None
        and 0 < len(key) <= MAX_KEY_BYTES  # type: ignore[arg-type]
        and len(value) <= max_value_bytes  # type: ignore[arg-type]
    ]


def _decoded_or_none(decode: Any, value: bytes | None) -> Any:
    try:
        return decode(value)
    except Exception:  # whatever the fast decoder refuses, decode_input decides
        return None


def _key_or_none(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None
