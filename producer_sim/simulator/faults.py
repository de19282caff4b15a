"""Malformed input records the simulator can mix into its stream, one or more per rejection reason.

Each case names the reason the consumer gives it on the dead-letter topic, for a model with 3
features and the consumer's default value size limit (`--max-value-bytes 65536`): with a larger
limit the `too_large` case is accepted. Cases whose fault is not in the key are sent under a key
of the simulator's own (`fault-<n>`), so they never touch a real sequence's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.codecs.inputs import DEFAULT_MAX_VALUE_BYTES, MAX_KEY_BYTES, RejectReason

_GOOD = b'{"features":[0.5,-1.0,2.0]}'


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    reason: RejectReason
    value: bytes | None
    # The key is part of the fault (used as is, None included); otherwise the sender picks one.
    fixed_key: bool = False
    key: bytes | None = None


def _padded(size: int) -> bytes:
    """A valid message padded with JSON whitespace to `size` bytes: too large, but not broken."""
    return _GOOD[:-1] + b" " * (size - len(_GOOD)) + b"}"


FAULTS: tuple[Fault, ...] = (
    Fault("plain_text", "invalid_json", b"hello"),
    Fault("truncated_json", "invalid_json", b'{"features":[1.0,2.0'),
    Fault("nan_literal", "invalid_json", b'{"features":[NaN,1,2]}'),
    Fault("top_level_array", "not_an_object", b"[1.0,2.0,3.0]"),
    Fault("empty_object", "missing_features", b"{}"),
    Fault("two_features", "wrong_feature_count", b'{"features":[1,2]}'),
    Fault("chunk_mixed_arity", "wrong_feature_count", b'{"features":[[1,2,3],[4,5]]}'),
    Fault("beyond_float32", "non_finite", b'{"features":[1e39,0,0]}'),
    Fault("beyond_double", "non_finite", b'{"features":[0,-1e400,0]}'),
    Fault("number_as_string", "not_a_number", b'{"features":[1,"2.5",3]}'),
    Fault("null_as_number", "not_a_number", b'{"features":[1,null,2]}'),
    Fault("null_key", "missing_key", _GOOD, fixed_key=True, key=None),
    Fault("key_too_long", "key_too_long", _GOOD, fixed_key=True, key=b"k" * (MAX_KEY_BYTES + 1)),
    Fault("key_invalid_utf8", "invalid_key", _GOOD, fixed_key=True, key=b"dev-\xff\xfe"),
    Fault("value_over_limit", "too_large", _padded(DEFAULT_MAX_VALUE_BYTES + 1)),
    Fault("end_as_string", "invalid_field", b'{"features":[1,2,3],"end":"yes"}'),
    Fault("ts_as_string", "invalid_field", b'{"features":[1,2,3],"ts":"1764150000000"}'),
)


def fault_key(fault: Fault, serial: int) -> bytes | None:
    """The key to send `fault` under as the `serial`-th fault of a run."""
    return fault.key if fault.fixed_key else f"fault-{serial}".encode()
