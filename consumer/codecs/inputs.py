"""Wire format of the input topic: Kafka key/value bytes to a typed record or a typed rejection.

The contract is docs/design.md, "Wire format"; the output side is
`consumer.codecs.outputs`. No Kafka and no model in this module: every
consumed record passes through `decode_input`, so the good path does as little as possible and
the explanation of a failure is only worked out once something has failed.

Checks, in this order; the first one that fails decides the rejection:

1. key: `None` or empty -> `missing_key`; more than 256 bytes (bytes, not characters) ->
   `key_too_long`; not valid UTF-8 -> `invalid_key`.
2. value: `None` (a tombstone is not a JSON document) -> `invalid_json`; more than
   `max_value_bytes` bytes -> `too_large`, before any parsing.
3. JSON: anything orjson refuses (syntax, invalid UTF-8, a byte order mark, `NaN`/`Infinity`
   literals, nesting deeper than 1024) -> `invalid_json`, except a number literal too large for
   a double (`1e400`), which orjson refuses as "infinity": that is `non_finite`, wherever it
   stands. A document that is not an object -> `not_an_object`.
4. flags: `end` and `reset`, if present, must be `true` or `false` (`null` is neither); `ts`,
   if present and not null, an integer (not a boolean) within signed 64 bits -> otherwise
   `invalid_field` naming the field.
5. `features` absent or null: valid only with `end: true` (a bare end marker, features `[]`);
   otherwise `missing_features`.
6. `features`: a list whose first element is a list is a chunk of rows, anything else a single
   sample. Structure problems are `wrong_feature_count`: not a list, an empty list, a row that
   is not a list or has the wrong length, a list where a number should be (which covers a
   sample mixing numbers and rows). At a number's position, a string, boolean, null or object
   is `not_a_number` (booleans are not numbers here, though Python's `bool` is an `int`). A
   number whose magnitude exceeds the largest float32 (about 3.4e38, so `1e39` or a 40-digit
   integer) is `non_finite`: the model runs in float32, where it would be infinite.

Integers are accepted as numbers and converted to `float`. Unknown fields are ignored, whatever
they hold. Details name the field or position (`features[2][1] is a string`) and never echo the
input, which may be large or binary. `decode_input` never raises for any bytes.

One more dead-letter reason comes from the engine, not from decoding: `wrong_partition`, a valid
record whose key has a sequence on another input partition of this worker (a producer with another
partitioner). Its offset cannot be compared with the sequence's, so it is neither applied nor
skipped as a replay; its dead letter names both partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson

RejectReason = Literal[
    "invalid_json",
    "not_an_object",
    "missing_features",
    "wrong_feature_count",
    "non_finite",
    "not_a_number",
    "missing_key",
    "key_too_long",
    "invalid_key",
    "too_large",
    "invalid_field",
]
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)
# Every `error` header of a dead letter: the decoding reasons above and the engine's.
DlqReason = Literal[RejectReason, "wrong_partition"]
DLQ_REASONS: tuple[DlqReason, ...] = get_args(DlqReason)

MAX_KEY_BYTES = 256
DEFAULT_MAX_VALUE_BYTES = 65536
# Largest finite float32; anything beyond would become inf when the model casts to float32.
FLOAT32_MAX = 3.4028234663852886e38
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One valid input message: a sequence id and its samples, oldest first."""

    key: str
    features: list[list[float]]  # [] for a bare end marker; each row: n_features finite floats
    end: bool
    reset: bool
    ts: int | None  # event time, epoch ms
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input message is bad input; goes to the dead-letter topic with the original bytes."""

    reason: DlqReason
    detail: str
    sequence_partition: int | None = None  # wrong_partition: where the key's sequence lives


def decode_input(
    key: bytes | None,
    value: bytes | None,
    *,
    n_features: int,
    partition: int,
    offset: int,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> InputRecord | Rejection:
    """Validates one Kafka record of the input topic (rules in the module docstring)."""
    if not key:
        return Rejection("missing_key", "the record has no key" if key is None else "empty key")
    if len(key) > MAX_KEY_BYTES:
        return Rejection("key_too_long", f"key is {len(key)} bytes, limit {MAX_KEY_BYTES}")
    try:
        seq_id = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("invalid_key", f"key is not valid UTF-8 at byte {exc.start}")
    if value is None:
        return Rejection("invalid_json", "the record has no value")
    if len(value) > max_value_bytes:
        return Rejection("too_large", f"value is {len(value)} bytes, limit {max_value_bytes}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if exc.msg.startswith("number is infinity"):
            return Rejection("non_finite", f"number at char {exc.pos} is too large for a double")
        return Rejection("invalid_json", f"{exc.msg} at char {exc.pos}")
    if type(doc) is not dict:
        return Rejection("not_an_object", f"value is {_kind(doc)}, expected an object")

    end = doc.get("end", False)
    reset = doc.get("reset", False)
    ts = doc.get("ts")
    if type(end) is not bool:
        return Rejection("invalid_field", f"end is {_kind(end)}, expected true or false")
    if type(reset) is not bool:
        return Rejection("invalid_field", f"reset is {_kind(reset)}, expected true or false")
    if ts is not None and (type(ts) is not int or not _INT64_MIN <= ts <= _INT64_MAX):
        what = "out of the 64-bit range" if type(ts) is int else _kind(ts)
        return Rejection("invalid_field", f"ts is {what}, expected integer epoch milliseconds")

    raw = doc.get("features")
    if raw is None:
        if end:
            return InputRecord(seq_id, [], end, reset, ts, partition, offset)
        return Rejection("missing_features", "no features and no end: true")
    rows = _rows(raw, n_features)
    if isinstance(rows, Rejection):
        return rows
    return InputRecord(seq_id, rows, end, reset, ts, partition, offset)


def _rows(raw: object, n: int) -> list[list[float]] | Rejection:
    """Validates `features` (one sample or a chunk) into rows of floats."""
    if type(raw) is not list or not raw:
        shape = "an empty list" if type(raw) is list else _kind(raw)
        return Rejection(
            "wrong_feature_count", f"features is {shape}, expected {n} numbers or rows of {n}"
        )
    if type(raw[0]) is not list:
        failure = _check_row(raw, n, None)
        return [raw] if failure is None else failure
    for i, row in enumerate(raw):
        failure = _check_row(row, n, i)
        if failure is not None:
            return failure
    return raw


def _check_row(row: Any, n: int, index: int | None) -> Rejection | None:
    """Checks one sample in place (ints become floats); `index` is None for a bare sample.

    The row is a list orjson just made and nobody else holds, so converting in place saves
    a copy on the hot path.
    """
    if type(row) is not list:
        return Rejection(
            "wrong_feature_count", f"{_where(index)} is {_kind(row)}, expected a row of {n}"
        )
    if len(row) != n:
        return Rejection(
            "wrong_feature_count", f"expected {n} features, got {len(row)} in {_where(index)}"
        )
    for j, item in enumerate(row):
        t = type(item)
        if t is float:
            v = item
        elif t is int:
            v = row[j] = float(item)  # orjson keeps ints within 64 bits: this cannot overflow
        else:
            reason: RejectReason = "wrong_feature_count" if t is list else "not_a_number"
            return Rejection(reason, f"{_where(index)}[{j}] is {_kind(item)}, expected a number")
        if not -FLOAT32_MAX <= v <= FLOAT32_MAX:
            return Rejection("non_finite", f"{_where(index)}[{j}] is beyond the float32 range")
    return None


def _where(index: int | None) -> str:
    return "features" if index is None else f"features[{index}]"


def _kind(v: object) -> str:
    """Names a JSON value's type for a rejection detail, without echoing the value."""
    if v is None:
        return "null"
    t = type(v)
    if t is bool:
        return "a boolean"
    if t is int or t is float:
        return "a number"
    if t is str:
        return "a string"
    if t is list:
        return "a list"
    if t is dict:
        return "an object"
    return t.__name__


def dlq_headers(
    rejection: Rejection, *, source_topic: str, source_partition: int, source_offset: int
) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record; its key and value are the original bytes, unchanged."""
    headers = [
        ("error", rejection.reason.encode()),
        ("error_detail", rejection.detail.encode()),
        ("source_topic", source_topic.encode()),
        ("source_partition", str(source_partition).encode()),
        ("source_offset", str(source_offset).encode()),
    ]
    if rejection.sequence_partition is not None:
        headers.append(("sequence_partition", str(rejection.sequence_partition).encode()))
    return headers


def wrong_partition(record: InputRecord, sequence_partition: int) -> Rejection:
    """The rejection of a record whose key's sequence lives on another partition."""
    return Rejection(
        "wrong_partition",
        f"key's sequence is on partition {sequence_partition}, record on {record.partition}",
        sequence_partition,
    )


def encode_input(
    *,
    features: Sequence[Sequence[float]] | Sequence[float] | None = None,
    end: bool = False,
    reset: bool = False,
    ts: int | None = None,
) -> bytes:
    """An input value as producers send it; fields at their default are left out.

    `features` is one sample or a chunk of rows (anything with a length, numpy arrays included);
    numbers are written as floats.
    """
    doc: dict[str, object] = {}
    if features is not None:
        doc["features"] = _plain_features(features)
    if end:
        doc["end"] = True
    if reset:
        doc["reset"] = True
    if ts is not None:
        doc["ts"] = int(ts)
    return orjson.dumps(doc)


def _plain_features(features: Sequence[Sequence[float]] | Sequence[float]) -> object:
    if len(features) and hasattr(features[0], "__len__"):
        rows: Sequence[Sequence[float]] = features  # type: ignore[assignment]
        return [[float(v) for v in row] for row in rows]
    sample: Sequence[float] = features  # type: ignore[assignment]
    return [float(v) for v in sample]
