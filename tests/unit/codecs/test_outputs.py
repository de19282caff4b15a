"""The output wire format: one JSON object per scored sample, and back."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from consumer.codecs.outputs import OutputRecord, decode_output, encode_output


def test_encode_output_matches_the_contract_example() -> None:
    value = encode_output(
        sequence_id="dev-17",
        step=5,
        outputs=[0.8731],
        final=False,
        reason=None,
        model_version="3f2a9c1e",
        partition=3,
        offset=98812,
        ts=1764150000000,
    )
    assert value == (
        b'{"sequence_id":"dev-17","step":5,"probability":0.8731,"final":false,"reason":null,'
        b'"model_version":"3f2a9c1e","partition":3,"offset":98812,"ts":1764150000000}'
    )


def _out(outputs: object, **kw: object) -> bytes:
    fields: dict[str, object] = {
        "sequence_id": "s",
        "step": 1,
        "outputs": outputs,
        "final": False,
        "reason": None,
        "model_version": "v1",
        "partition": None,
        "offset": None,
        "ts": None,
    }
    fields.update(kw)
    return encode_output(**fields)  # type: ignore[arg-type]


def test_several_outputs_become_probabilities() -> None:
    row = np.array([0.1, 0.7, 0.2], dtype=np.float32)
    value = _out(row, final=True, reason="max_steps")
    assert list(orjson.loads(value))[2] == "probabilities"
    record = decode_output(value)
    assert record.probability is None
    assert np.array_equal(np.array(record.outputs, dtype=np.float32), row)
    assert (record.final, record.reason) == (True, "max_steps")


def test_float32_output_keeps_full_precision() -> None:
    p = np.float32(0.8731)
    value = _out(np.array([p]))
    assert b'"probability":0.8730999827384949' in value
    assert np.float32(decode_output(value).outputs[0]) == p


def test_non_finite_output_is_written_as_null() -> None:
    value = _out([math.nan])
    assert b'"probability":null' in value
    assert math.isnan(decode_output(value).outputs[0])


def test_decode_output_fields() -> None:
    value = _out([0.25], step=9, partition=0, offset=12, ts=5, final=True, reason="idle_timeout")
    assert decode_output(value) == OutputRecord(
        "s", 9, 0.25, None, True, "idle_timeout", "v1", 0, 12, 5
    )


@pytest.mark.parametrize(
    "kw",
    [{"outputs": []}, {"final": True}, {"reason": "end"}],
    ids=["no_outputs", "final_without_reason", "reason_without_final"],
)
def test_encode_output_refuses_inconsistent_records(kw: dict[str, object]) -> None:
    fields = dict(kw)
    outputs = fields.pop("outputs", [0.5])
    with pytest.raises(ValueError):
        _out(outputs, **fields)


@pytest.mark.parametrize(
    "change",
    [
        {"probability": "high"},
        {"probabilities": [0.1, 0.9]},
        {"step": True},
        {"final": 1},
        {"reason": "done", "final": True},
        {"reason": "end"},
        {"partition": "3"},
        {"sequence_id": 17},
        {"model_version": None},
    ],
)
def test_decode_output_refuses_contract_breaks(change: dict[str, object]) -> None:
    doc = orjson.loads(_out([0.5]))
    doc.update(change)
    with pytest.raises(ValueError):
        decode_output(orjson.dumps(doc))


@pytest.mark.parametrize("field", ["ts", "probability", "final", "partition"])
def test_decode_output_refuses_missing_fields(field: str) -> None:
    doc = orjson.loads(_out([0.5]))
    del doc[field]
    with pytest.raises(ValueError):
        decode_output(orjson.dumps(doc))


@pytest.mark.parametrize("value", [b"", b"[]", b'{"probability":0.5', b"\xff"])
def test_decode_output_refuses_non_objects(value: bytes) -> None:
    with pytest.raises(ValueError):
        decode_output(value)
