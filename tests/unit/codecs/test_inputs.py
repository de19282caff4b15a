"""The input wire format: bytes to a typed record or a typed rejection, and dead letters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import cast

import numpy as np
import orjson
import pytest

from consumer.codecs.inputs import (
    DEFAULT_MAX_VALUE_BYTES,
    DLQ_REASONS,
    REJECT_REASONS,
    InputRecord,
    Rejection,
    RejectReason,
    decode_input,
    dlq_headers,
    encode_input,
    wrong_partition,
)
from tests.bad_inputs import (
    BAD_INPUTS,
    GOOD_VALUE,
    KEY_256_BYTES,
    N_FEATURES,
    VALUE_AT_LIMIT,
    BadInput,
)


def decode(
    value: bytes | None, key: bytes | None = b"dev-17", **kw: int
) -> InputRecord | Rejection:
    return decode_input(key, value, n_features=N_FEATURES, partition=3, offset=98812, **kw)


def accepted(value: bytes, key: bytes = b"dev-17", **kw: int) -> InputRecord:
    result = decode(value, key, **kw)
    assert isinstance(result, InputRecord), result
    return result


def rejected(value: bytes | None, key: bytes | None = b"dev-17", **kw: int) -> Rejection:
    result = decode(value, key, **kw)
    assert isinstance(result, Rejection), result
    return result


# --- the corpus of bad input -------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.name for c in BAD_INPUTS])
def test_bad_input_is_rejected_with_its_reason(case: BadInput) -> None:
    rejection = rejected(case.value, case.key)
    assert rejection.reason == case.reason
    assert 0 < len(rejection.detail) <= 120


def test_corpus_covers_every_reason_at_least_twice() -> None:
    counts = Counter(case.reason for case in BAD_INPUTS)
    assert {r: counts[r] for r in REJECT_REASONS if counts[r] < 2} == {}
    assert len(BAD_INPUTS) >= 30
    assert len({case.name for case in BAD_INPUTS}) == len(BAD_INPUTS)


def test_detail_never_echoes_the_input() -> None:
    secret = "s3cr3t-payload"
    value = orjson.dumps({"features": [1, secret, 3], "ts": 1})
    rejection = rejected(value, key=secret.encode())
    assert rejection == Rejection("not_a_number", "features[1] is a string, expected a number")


# --- details name the position -----------------------------------------------------------------


DETAILS: list[tuple[bytes, RejectReason, str]] = [
    (b'{"features":[1,2,3,4]}', "wrong_feature_count", "expected 3 features, got 4 in features"),
    (
        b'{"features":[[1,2,3],[1,2]]}',
        "wrong_feature_count",
        "expected 3 features, got 2 in features[1]",
    ),
    (
        b'{"features":[[1,2,3],[1,2,3],[1,"x",3]]}',
        "not_a_number",
        "features[2][1] is a string, expected a number",
    ),
    (
        b'{"features":[[1,2,3],[1,2,false]]}',
        "not_a_number",
        "features[1][2] is a boolean, expected a number",
    ),
    (
        b'{"features":[[1,2,3],7]}',
        "wrong_feature_count",
        "features[1] is a number, expected a row of 3",
    ),
    (b'{"features":[1,[2],3]}', "wrong_feature_count", "features[1] is a list, expected a number"),
    (b'{"features":[0,0,-1e39]}', "non_finite", "features[2] is beyond the float32 range"),
    (
        b'{"features":[]}',
        "wrong_feature_count",
        "features is an empty list, expected 3 numbers or rows of 3",
    ),
    (
        b'{"features":[1,2,3],"ts":1.5}',
        "invalid_field",
        "ts is a number, expected integer epoch milliseconds",
    ),
    (b'{"features":[1,2,3],"end":null}', "invalid_field", "end is null, expected true or false"),
    (b"[1,2,3]", "not_an_object", "value is a list, expected an object"),
]


@pytest.mark.parametrize(("value", "reason", "detail"), DETAILS)
def test_rejection_detail_names_the_position(
    value: bytes, reason: RejectReason, detail: str
) -> None:
    assert rejected(value) == Rejection(reason, detail)


def test_first_problem_in_input_order_decides() -> None:
    assert rejected(b'{"features":[[1,2,3],[1,"x"],[1e39,0,0]]}').reason == "wrong_feature_count"
    assert rejected(b'{"features":[[1,2,3],[1e39,0,0],[1,"x"]]}').reason == "non_finite"


def test_key_is_checked_before_the_value() -> None:
    assert rejected(b"not json", key=None).reason == "missing_key"
    assert rejected(None, key=b"\xff").reason == "invalid_key"


def test_value_none_is_invalid_json() -> None:
    assert rejected(None) == Rejection("invalid_json", "the record has no value")


def test_double_overflow_is_non_finite_even_outside_features() -> None:
    # orjson refuses the whole document, so where the number stands cannot be told
    assert rejected(b'{"features":[1,2,3],"ts":1e400}').reason == "non_finite"
    assert rejected(b'{"features":[1,2,3],"x":[-1e999]}').reason == "non_finite"


# --- limits ------------------------------------------------------------------------------------


def test_key_of_256_bytes_is_accepted() -> None:
    assert accepted(GOOD_VALUE, key=KEY_256_BYTES).key == KEY_256_BYTES.decode()


def test_multibyte_key_is_measured_in_bytes() -> None:
    assert accepted(GOOD_VALUE, key="é".encode() * 128).key == "é" * 128
    assert rejected(GOOD_VALUE, key="é".encode() * 128 + b"x").reason == "key_too_long"
    assert accepted(GOOD_VALUE, key="€".encode() * 85).key == "€" * 85  # 255 bytes


def test_value_exactly_at_the_limit_is_accepted() -> None:
    assert len(VALUE_AT_LIMIT) == DEFAULT_MAX_VALUE_BYTES
    assert accepted(VALUE_AT_LIMIT).features == [[0.5, -1.0, 2.0]]


def test_value_limit_is_configurable() -> None:
    assert len(GOOD_VALUE) == 27
    assert accepted(GOOD_VALUE, max_value_bytes=27).features == [[0.5, -1.0, 2.0]]
    assert rejected(GOOD_VALUE, max_value_bytes=26) == Rejection(
        "too_large", "value is 27 bytes, limit 26"
    )


def test_size_is_checked_before_parsing() -> None:
    assert rejected(b"x" * 100, max_value_bytes=99).reason == "too_large"


# --- good input --------------------------------------------------------------------------------


def test_single_sample() -> None:
    record = accepted(b'{"features":[0.5,-1.25,3e-5]}')
    assert record == InputRecord("dev-17", [[0.5, -1.25, 3e-5]], False, False, None, 3, 98812)


def test_chunk_keeps_order() -> None:
    record = accepted(b'{"features":[[1.5,2,3],[4,5,6],[7,8,9.5]]}')
    assert record.features == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.5]]


def test_integers_become_floats() -> None:
    record = accepted(b'{"features":[[1,-2,0],[18446744073709551615,-9223372036854775808,7]]}')
    assert [[type(v) for v in row] for row in record.features] == [[float] * 3] * 2
    assert record.features[1] == [1.8446744073709552e19, -9.223372036854776e18, 7.0]


def test_float32_extremes_are_accepted() -> None:
    top = float(np.finfo(np.float32).max)
    record = accepted(orjson.dumps({"features": [top, -top, 1e-45]}))
    assert record.features == [[top, -top, 1e-45]]


def test_end_inline_and_bare() -> None:
    inline = accepted(b'{"features":[1,2,3],"end":true}')
    assert (inline.features, inline.end) == ([[1.0, 2.0, 3.0]], True)
    bare = accepted(b'{"end":true}')
    assert (bare.features, bare.end, bare.reset) == ([], True, False)
    assert accepted(b'{"end":true,"features":null}').features == []


def test_reset_and_ts() -> None:
    record = accepted(b'{"features":[1,2,3],"reset":true,"ts":1764150000000}')
    assert (record.reset, record.end, record.ts) == (True, False, 1764150000000)
    assert accepted(b'{"features":[1,2,3],"ts":null}').ts is None
    assert accepted(b'{"features":[1,2,3],"ts":-5}').ts == -5
    assert accepted(b'{"end":true,"reset":true}').reset is True


def test_explicit_defaults_are_accepted() -> None:
    record = accepted(b'{"features":[1,2,3],"end":false,"reset":false}')
    assert (record.end, record.reset) == (False, False)


def test_unknown_fields_are_ignored_whatever_they_hold() -> None:
    value = b'{"v":2,"features":[1,2,3],"note":"NaN","extra":[[1e39],{"a":null}],"end":true}'
    record = accepted(value)
    assert (record.features, record.end) == ([[1.0, 2.0, 3.0]], True)


def test_key_is_any_utf8() -> None:
    assert accepted(GOOD_VALUE, key="капитан/€/🚀\x00".encode()).key == "капитан/€/🚀\x00"


# --- dead-letter headers -----------------------------------------------------------------------


def test_dlq_headers() -> None:
    rejection = Rejection("wrong_feature_count", "expected 3 features, got 4 in features")
    headers = dlq_headers(rejection, source_topic="samples", source_partition=3, source_offset=42)
    assert headers == [
        ("error", b"wrong_feature_count"),
        ("error_detail", b"expected 3 features, got 4 in features"),
        ("source_topic", b"samples"),
        ("source_partition", b"3"),
        ("source_offset", b"42"),
    ]


def test_a_wrong_partition_dead_letter_names_both_partitions() -> None:
    record = InputRecord("dev-17", [[1.0, 2.0, 3.0]], False, False, None, 5, 42)
    rejection = wrong_partition(record, 2)
    headers = dlq_headers(rejection, source_topic="samples", source_partition=5, source_offset=42)
    assert headers == [
        ("error", b"wrong_partition"),
        ("error_detail", b"key's sequence is on partition 2, record on 5"),
        ("source_topic", b"samples"),
        ("source_partition", b"5"),
        ("source_offset", b"42"),
        ("sequence_partition", b"2"),
    ]
    # A reason of the dead-letter topic, which decoding never gives.
    assert (*REJECT_REASONS, "wrong_partition") == DLQ_REASONS


# --- encode_input ------------------------------------------------------------------------------


def test_encode_input_omits_defaults() -> None:
    assert encode_input(features=[1, 2.5, -3]) == b'{"features":[1.0,2.5,-3.0]}'
    assert encode_input(end=True) == b'{"end":true}'
    assert encode_input(features=[[1, 2, 3]], end=True, reset=True, ts=7) == (
        b'{"features":[[1.0,2.0,3.0]],"end":true,"reset":true,"ts":7}'
    )


def test_encode_input_takes_numpy() -> None:
    # a numpy array is a sequence of rows at run time, though not to the type checker
    chunk = cast(Sequence[Sequence[float]], np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
    assert accepted(encode_input(features=chunk)).features == [[0, 0.25, 0.5], [0.75, 1, 1.25]]
    assert accepted(encode_input(features=chunk[1])).features == [[0.75, 1.0, 1.25]]


# --- output ------------------------------------------------------------------------------------
