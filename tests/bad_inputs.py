"""Malformed input records, each with the rejection reason the consumer must give it.

For a model with 3 features and the default value size limit. Unit tests decode each case;
integration and reliability tests send them to the input topic among good records and expect
each one on the dead-letter topic with its bytes unchanged and `error` set to `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.codecs.inputs import DEFAULT_MAX_VALUE_BYTES, MAX_KEY_BYTES, RejectReason

N_FEATURES = 3
GOOD_VALUE = b'{"features":[0.5,-1.0,2.0]}'


@dataclass(frozen=True, slots=True)
class BadInput:
    name: str
    key: bytes | None
    value: bytes | None
    reason: RejectReason


def _bad(name: str, value: bytes | None, reason: RejectReason, key: bytes = b"bad-1") -> BadInput:
    return BadInput(name, key, value, reason)


def _padded(size: int) -> bytes:
    """A valid message padded with JSON whitespace to exactly `size` bytes."""
    return GOOD_VALUE + b" " * (size - len(GOOD_VALUE))


_DEEP = b'{"features":' + b"[" * 2000 + b"]" * 2000 + b"}"

BAD_INPUTS: tuple[BadInput, ...] = (
    # key
    BadInput("null_key", None, GOOD_VALUE, "missing_key"),
    BadInput("empty_key", b"", GOOD_VALUE, "missing_key"),
    BadInput("key_257_bytes", b"k" * (MAX_KEY_BYTES + 1), GOOD_VALUE, "key_too_long"),
    # 129 two-byte characters: short in characters, 258 bytes long
    BadInput("key_multibyte_258_bytes", "é".encode() * 129, GOOD_VALUE, "key_too_long"),
    BadInput("key_invalid_utf8", b"dev-\xff\xfe", GOOD_VALUE, "invalid_key"),
    BadInput("key_truncated_multibyte", b"dev-\xc3", GOOD_VALUE, "invalid_key"),
    BadInput("key_encoded_surrogate", b"dev-\xed\xa0\x80", GOOD_VALUE, "invalid_key"),
    # size
    _bad("value_one_byte_over_limit", _padded(DEFAULT_MAX_VALUE_BYTES + 1), "too_large"),
    # well under the broker's default 1 MB message limit, so it can be produced
    _bad("value_100_kb", b'{"features":[' + b"0," * 50_000 + b"0]}", "too_large"),
    # not JSON
    _bad("null_value", None, "invalid_json"),
    _bad("empty_value", b"", "invalid_json"),
    _bad("plain_text", b"hello", "invalid_json"),
    _bad("truncated_json", b'{"features":[1.0,2.0', "invalid_json"),
    _bad("single_quotes", b"{'features':[1,2,3]}", "invalid_json"),
    _bad("invalid_utf8_in_value", b'{"features":[1,2,3],"note":"\xff\xfe"}', "invalid_json"),
    _bad("byte_order_mark", b"\xef\xbb\xbf" + GOOD_VALUE, "invalid_json"),
    _bad("nan_literal", b'{"features":[NaN,1,2]}', "invalid_json"),
    _bad("lowercase_nan_literal", b'{"features":[nan,1,2]}', "invalid_json"),
    _bad("infinity_literal", b'{"features":[Infinity,1,2]}', "invalid_json"),
    _bad("minus_infinity_literal", b'{"features":[1,-Infinity,2]}', "invalid_json"),
    _bad("nested_2000_deep", _DEEP, "invalid_json"),
    # not an object
    _bad("top_level_array", b"[1.0,2.0,3.0]", "not_an_object"),
    _bad("top_level_string", b'"features"', "not_an_object"),
    _bad("top_level_number", b"42", "not_an_object"),
    _bad("top_level_null", b"null", "not_an_object"),
    # no features
    _bad("empty_object", b"{}", "missing_features"),
    _bad("end_false_alone", b'{"end":false}', "missing_features"),
    _bad("features_null", b'{"features":null}', "missing_features"),
    _bad("reset_alone", b'{"reset":true,"ts":1764150000000}', "missing_features"),
    # shape
    _bad("four_features", b'{"features":[1,2,3,4]}', "wrong_feature_count"),
    _bad("two_features", b'{"features":[1,2]}', "wrong_feature_count"),
    _bad("empty_features", b'{"features":[]}', "wrong_feature_count"),
    _bad("empty_features_with_end", b'{"features":[],"end":true}', "wrong_feature_count"),
    _bad("empty_row", b'{"features":[[]]}', "wrong_feature_count"),
    _bad("chunk_mixed_arity", b'{"features":[[1,2,3],[4,5],[6,7,8]]}', "wrong_feature_count"),
    _bad("chunk_then_number", b'{"features":[[1,2,3],4]}', "wrong_feature_count"),
    _bad("number_then_row", b'{"features":[1,[2,3,4],5]}', "wrong_feature_count"),
    _bad("rows_nested_too_deep", b'{"features":[[[1,2,3]]]}', "wrong_feature_count"),
    _bad("features_a_number", b'{"features":5}', "wrong_feature_count"),
    _bad("features_a_string", b'{"features":"1,2,3"}', "wrong_feature_count"),
    _bad("features_an_object", b'{"features":{"f1":1,"f2":2,"f3":3}}', "wrong_feature_count"),
    # not numbers
    _bad("nan_as_string", b'{"features":["NaN",1,2]}', "not_a_number"),
    _bad("number_as_string", b'{"features":[[1,2,3],[1,"2.5",3]]}', "not_a_number"),
    _bad("boolean_as_number", b'{"features":[true,0,1]}', "not_a_number"),
    _bad("null_as_number", b'{"features":[1,null,2]}', "not_a_number"),
    _bad("object_as_number", b'{"features":[1,2,{"v":3}]}', "not_a_number"),
    # too large for float32 / double
    _bad("beyond_float32", b'{"features":[1e39,0,0]}', "non_finite"),
    _bad("beyond_float32_negative", b'{"features":[[0,0,0],[0,-3.5e38,0]]}', "non_finite"),
    _bad("forty_digit_integer", b'{"features":[1' + b"0" * 39 + b",0,0]}", "non_finite"),
    _bad("beyond_double", b'{"features":[1e400,0,0]}', "non_finite"),
    _bad("beyond_double_negative", b'{"features":[0,-1e400,0]}', "non_finite"),
    _bad("integer_beyond_double", b'{"features":[1' + b"0" * 310 + b",0,0]}", "non_finite"),
    # flags
    _bad("end_as_string", b'{"features":[1,2,3],"end":"yes"}', "invalid_field"),
    _bad("end_as_number", b'{"end":1}', "invalid_field"),
    _bad("reset_as_string", b'{"features":[1,2,3],"reset":"true"}', "invalid_field"),
    _bad("reset_null", b'{"features":[1,2,3],"reset":null}', "invalid_field"),
    _bad("ts_as_string", b'{"features":[1,2,3],"ts":"1764150000000"}', "invalid_field"),
    _bad("ts_fractional", b'{"features":[1,2,3],"ts":1764150000000.5}', "invalid_field"),
    _bad("ts_boolean", b'{"features":[1,2,3],"ts":true}', "invalid_field"),
    _bad("ts_beyond_int64", b'{"features":[1,2,3],"ts":9223372036854775808}', "invalid_field"),
)

# Valid, and at the edge of a limit: they must not be rejected.
KEY_256_BYTES = b"k" * MAX_KEY_BYTES
VALUE_AT_LIMIT = _padded(DEFAULT_MAX_VALUE_BYTES)
