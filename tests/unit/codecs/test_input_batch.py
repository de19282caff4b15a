"""The batch decoder against `decode_input`: the same records, values and rejections, in any mix."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs.input_batch import DecodedBatch, decode_batch
from consumer.codecs.inputs import DEFAULT_MAX_VALUE_BYTES, InputRecord, decode_input
from tests.bad_inputs import BAD_INPUTS, GOOD_VALUE, KEY_256_BYTES, VALUE_AT_LIMIT
from tests.unit.codecs.test_wire_properties import keys, mutated_messages, value_objects

N = 3


def batch_of(
    keys: list[bytes | None], values: list[bytes | None], max_value_bytes: int = 65536
) -> DecodedBatch:
    n = len(values)
    return decode_batch(
        keys,
        values,
        [i % 3 for i in range(n)],
        [100 + i for i in range(n)],
        np.arange(n, dtype=np.float64) + 0.5,
        n_features=N,
        max_value_bytes=max_value_bytes,
    )


def assert_same_as_one_by_one(
    keys: list[bytes | None], values: list[bytes | None], max_value_bytes: int = 65536
) -> DecodedBatch:
    """Every position decodes as `decode_input` decodes it alone: rejected with the same
    reason and detail, or valid with the same fields (features as the float32 the model uses)."""
    batch = batch_of(keys, values, max_value_bytes)
    by_position: dict[int, Any] = dict(batch.rejections)
    s = batch.samples
    for j, position in enumerate(s.positions.tolist()):
        by_position[position] = (s.record(j), s.features[j], float(s.times[j]))
    for record, position, t in zip(
        batch.records, batch.record_positions, batch.record_times, strict=True
    ):
        by_position[position] = (record, None, t)
    assert sorted(by_position) == list(range(len(values)))
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        alone = decode_input(
            key,
            value,
            n_features=N,
            partition=i % 3,
            offset=100 + i,
            max_value_bytes=max_value_bytes,
        )
        got = by_position[i]
        if not isinstance(alone, InputRecord):
            assert got == alone, (i, key, value)
            continue
        record, row, t = got
        assert t == i + 0.5
        if row is None:
            assert record == alone
            continue
        assert len(alone.features) == 1 and not alone.end and not alone.reset
        np.testing.assert_array_equal(row, np.asarray(alone.features[0], np.float32))
        assert (record.key, record.ts, record.partition, record.offset) == (
            alone.key,
            alone.ts,
            alone.partition,
            alone.offset,
        )
    return batch


def test_plain_samples_become_columns() -> None:
    values: list[bytes | None] = [
        orjson.dumps({"features": [i, 0.5, -2], "ts": 1000 + i}) for i in range(5)
    ]
    batch = assert_same_as_one_by_one([f"k{i}".encode() for i in range(5)], values)
    assert len(batch.samples) == 5 and not batch.records and not batch.rejections
    assert batch.samples.features.dtype == np.float32
    assert batch.samples.ts == [1000, 1001, 1002, 1003, 1004]


def test_every_bad_input_keeps_its_reason_among_good_records() -> None:
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    for case in BAD_INPUTS:
        keys += [b"good-a", case.key, b"good-b"]
        values += [GOOD_VALUE, case.value, GOOD_VALUE]
    batch = assert_same_as_one_by_one(keys, values)
    assert len(batch.rejections) == len(BAD_INPUTS)
    assert len(batch.samples) == 2 * len(BAD_INPUTS)


def test_records_at_the_limits_and_with_flags_take_the_object_path_unchanged() -> None:
    values: list[bytes | None] = [
        VALUE_AT_LIMIT,
        b'{"features":[[1,2,3],[4,5,6]]}',
        b'{"features":[1,2,3],"end":true}',
        b'{"features":[1,2,3],"reset":true}',
        b'{"end":true}',
        b'{"features":[1,2,3],"end":false}',
        b'{"features":[1,2,3],"source":"\xff"}',  # invalid UTF-8 in an unknown field
        b'{"features":[1,2,3],"other":1e400}',  # beyond a double in an unknown field
        b'{"features":[1,2,3],"ts":9223372036854775808}',
        b'{"features":[1,2,3],"ts":-9223372036854775809}',
        b'{"features":[1e39,2,3]}',
        b'{"features":[1,2,3],"features":[4,5,6]}',
        b'{"features":[true,2,3]}',
        b'{"features":[1,2,3],"ts":1.0}',
    ]
    keys: list[bytes | None] = [KEY_256_BYTES, *(f"k{i}".encode() for i in range(len(values) - 1))]
    assert_same_as_one_by_one(keys, values)
    assert_same_as_one_by_one(keys, values, max_value_bytes=len(VALUE_AT_LIMIT) - 1)


def test_numbers_read_the_same_in_any_notation() -> None:
    rng = random.Random(5)
    values: list[bytes | None] = []
    for _ in range(2000):
        v = rng.choice([rng.uniform(-1e6, 1e6), rng.gauss(0, 1e-30), rng.gauss(0, 1e30)])
        forms = [repr(v), f"{v:.17g}", f"{v:.9e}", f"{v:.3E}", str(int(v)), f"{int(v)}.000"]
        picked = [rng.choice(forms) for _ in range(N)]
        values.append(f'{{"features":[{",".join(picked)}]}}'.encode())
    values.append(b'{"features":[-0,0,-0.0]}')
    values.append(b'{"features":[18446744073709551615,9007199254740993,1e-400]}')
    keys: list[bytes | None] = [f"k{i}".encode() for i in range(len(values))]
    batch = assert_same_as_one_by_one(keys, values)
    assert len(batch.samples) == len(values)
    assert np.signbit(batch.samples.features[-2]).tolist() == [False, False, True]


@settings(deadline=None, max_examples=200)
@given(
    items=st.lists(
        st.tuples(
            st.sampled_from([b"dev-1", b"", None, KEY_256_BYTES, KEY_256_BYTES + b"x", b"\xff"])
            | keys,
            st.none() | value_objects.map(orjson.dumps) | st.binary(max_size=40),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_batch_decodes_as_its_records_do_alone(
    items: list[tuple[bytes | None, bytes | None]],
) -> None:
    assert_same_as_one_by_one([k for k, _ in items], [v for _, v in items])


@settings(deadline=None, max_examples=200)
@given(value=mutated_messages())
def test_mutated_messages_decode_as_they_do_alone(value: bytes) -> None:
    assert_same_as_one_by_one([b"a", b"b", b"c"], [GOOD_VALUE, value, GOOD_VALUE])


def test_the_default_size_limit_applies() -> None:
    big = b'{"features":[1,2,3],"pad":"' + b"x" * DEFAULT_MAX_VALUE_BYTES + b'"}'
    batch = assert_same_as_one_by_one([b"a", b"b"], [GOOD_VALUE, big], DEFAULT_MAX_VALUE_BYTES)
    assert [r.reason for _, r in batch.rejections] == ["too_large"]
