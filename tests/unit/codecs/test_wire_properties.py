"""Properties of the wire format: round trips are exact, and no input makes decoding raise."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consumer.codecs.inputs import FLOAT32_MAX, InputRecord, Rejection, decode_input, encode_input
from consumer.codecs.outputs import FINAL_REASONS, decode_output, encode_output
from tests.bad_inputs import BAD_INPUTS, GOOD_VALUE

N = 3
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# float32 values, and float64 values inside the float32 range (the decoder keeps them as given)
finite = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX),
)
sample = st.lists(finite, min_size=N, max_size=N)
keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64).map(str.encode)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
# objects shaped like input values, so that most checks are reached, not just the first ones
near_features = st.one_of(
    json_values,
    st.lists(json_values, min_size=N, max_size=N),
    st.lists(st.lists(json_values | finite, min_size=N - 1, max_size=N + 1), max_size=4),
    st.lists(sample, min_size=1, max_size=4),
)
value_objects = st.fixed_dictionaries(
    {},
    optional={
        "features": near_features,
        "end": st.booleans() | json_values,
        "reset": st.booleans() | json_values,
        "ts": INT64 | json_values,
        "other": json_values,
    },
)


def check_decoded(result: InputRecord | Rejection) -> None:
    """Whatever came in, the result is one of the two types and a record keeps its promises."""
    assert type(result) in (InputRecord, Rejection)
    event("accepted" if isinstance(result, InputRecord) else result.reason)
    if isinstance(result, Rejection):
        assert result.detail
        return
    assert type(result.end) is bool and type(result.reset) is bool
    assert result.ts is None or type(result.ts) is int
    assert result.features or result.end
    for row in result.features:
        assert len(row) == N
        assert all(type(v) is float and abs(v) <= FLOAT32_MAX for v in row)


@settings(deadline=None)
@given(
    key=keys,
    chunk=st.one_of(st.none(), sample, st.lists(sample, min_size=1, max_size=20)),
    end=st.booleans(),
    reset=st.booleans(),
    ts=st.none() | INT64,
)
def test_encode_then_decode_input_is_exact(
    key: bytes,
    chunk: list[float] | list[list[float]] | None,
    end: bool,
    reset: bool,
    ts: int | None,
) -> None:
    end = end or chunk is None  # a message without features must end its sequence
    value = encode_input(features=chunk, end=end, reset=reset, ts=ts)
    record = decode_input(key, value, n_features=N, partition=1, offset=2)
    rows = [] if chunk is None else chunk if isinstance(chunk[0], list) else [chunk]
    assert record == InputRecord(key.decode(), rows, end, reset, ts, 1, 2)


@settings(deadline=None, max_examples=300)
@given(
    key=st.sampled_from([b"dev-1", b"", None]) | st.binary(max_size=300),
    value=st.none() | st.binary(max_size=200),
)
def test_decode_input_never_raises_on_bytes(key: bytes | None, value: bytes | None) -> None:
    check_decoded(decode_input(key, value, n_features=N, partition=0, offset=0))


@settings(deadline=None, max_examples=300)
@given(doc=json_values | value_objects)
def test_decode_input_never_raises_on_json(doc: Any) -> None:
    check_decoded(decode_input(b"k", orjson.dumps(doc), n_features=N, partition=0, offset=0))


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """Byte edits of real messages reach the deep branches that random bytes rarely do."""
    base = draw(
        st.sampled_from([GOOD_VALUE, *(c.value for c in BAD_INPUTS if c.value is not None)])
    )
    cut = draw(st.integers(min_value=0, max_value=len(base)))
    insert = draw(st.binary(max_size=4) | st.sampled_from([b"[", b"]", b",", b'"', b"e9"]))
    drop = draw(st.integers(min_value=0, max_value=3))
    return base[:cut] + insert + base[cut + drop :]


@settings(deadline=None, max_examples=300)
@given(value=mutated_messages())
def test_decode_input_never_raises_on_mutated_messages(value: bytes) -> None:
    check_decoded(decode_input(b"k", value, n_features=N, partition=0, offset=0))


@st.composite
def output_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of encode_output; the outputs are a float32 row as the engine has it."""
    n = draw(st.integers(min_value=1, max_value=5))
    floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
    reason = draw(st.none() | st.sampled_from(FINAL_REASONS))
    return {
        "sequence_id": draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)),
        "step": draw(st.integers(min_value=1, max_value=2**40)),
        "outputs": np.array(draw(st.lists(floats32, min_size=n, max_size=n)), dtype=np.float32),
        "final": reason is not None,
        "reason": reason,
        "model_version": draw(st.text(st.characters(codec="utf-8"), max_size=16)),
        "partition": draw(st.none() | st.integers(min_value=0, max_value=2**31 - 1)),
        "offset": draw(st.none() | st.integers(min_value=0, max_value=2**63 - 1)),
        "ts": draw(st.none() | INT64),
    }


@settings(deadline=None)
@given(fields=output_fields())
def test_encode_then_decode_output_is_exact(fields: dict[str, Any]) -> None:
    record = decode_output(encode_output(**fields))
    outputs = fields.pop("outputs")
    assert (record.probability is None) == (len(outputs) > 1)
    back = np.array(record.outputs, dtype=np.float32)
    # exact, not approximate: every float32 output survives the trip bit for bit (sign of 0 too)
    assert back.tobytes() == outputs.tobytes()
    assert {name: getattr(record, name) for name in fields} == fields
