"""Wire format of the output topic: one JSON object per scored sample (contract: docs/design.md,
"Output topic").

Keys are written in the contract's order: `sequence_id, step, probability | probabilities,
final, reason, model_version, partition, offset, ts`. A model with one output unit writes
`"probability": p`, one with several `"probabilities": [..]`. Outputs are written as the
float64 value of the model's float32 output, in the shortest form that reads back exactly, so
nothing is rounded away. JSON has no NaN or infinity: a non-finite output (a broken model) is
written as `null` rather than stopping the worker, and reads back as NaN.

`decode_output` is strict (it is for tests, replay comparison and evaluation): a value that is not
such an object raises `ValueError` naming the field. Unknown fields are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import orjson

if TYPE_CHECKING:
    from consumer.engine.results import Outputs

# model_changed: ended by a rollout under `--on-model-change restart`; model_unavailable: restored
# under a model version the worker cannot load any more.
FinalReason = Literal["end", "max_steps", "idle_timeout", "model_changed", "model_unavailable"]
FINAL_REASONS: tuple[FinalReason, ...] = get_args(FinalReason)
_REQUIRED = frozenset(
    ("sequence_id", "step", "final", "reason", "model_version", "partition", "offset", "ts")
)


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One output value, field for field; exactly one of `probability`/`probabilities` is set."""

    sequence_id: str
    step: int
    probability: float | None
    probabilities: tuple[float, ...] | None
    final: bool
    reason: FinalReason | None
    model_version: str
    partition: int | None
    offset: int | None
    ts: int | None

    @property
    def outputs(self) -> tuple[float, ...]:
        """The model's outputs whatever their count."""
        if self.probabilities is not None:
            return self.probabilities
        assert self.probability is not None  # guaranteed by decode_output
        return (self.probability,)


def encode_output(
    *,
    sequence_id: str,
    step: int,
    outputs: Sequence[float],
    final: bool,
    reason: FinalReason | None,
    model_version: str,
    partition: int | None,
    offset: int | None,
    ts: int | None,
) -> bytes:
    """One output value; `outputs` may be a numpy float32 row."""
    if final != (reason is not None):
        raise ValueError(f"final={final} needs a reason exactly when final, got {reason!r}")
    doc: dict[str, object] = {"sequence_id": sequence_id, "step": step}
    n = len(outputs)  # not truthiness: a numpy row has none
    if n == 1:
        doc["probability"] = float(outputs[0])
    elif n > 1:
        doc["probabilities"] = [float(v) for v in outputs]
    else:
        raise ValueError("a model has at least one output unit")
    doc["final"] = final
    doc["reason"] = reason
    doc["model_version"] = model_version
    doc["partition"] = partition
    doc["offset"] = offset
    doc["ts"] = ts
    return orjson.dumps(doc)


def decode_output(value: bytes) -> OutputRecord:
    """Parses one output value; raises `ValueError` when it breaks the contract."""
    doc = orjson.loads(value)  # JSONDecodeError is a ValueError
    if type(doc) is not dict:
        raise ValueError("an output value is a JSON object")
    missing = _REQUIRED - doc.keys()
    if missing:
        raise ValueError(f"missing fields: {', '.join(sorted(missing))}")
    has_one = "probability" in doc
    if has_one == ("probabilities" in doc):
        raise ValueError("an output has exactly one of probability and probabilities")
    probability = _prob(doc["probability"], "probability") if has_one else None
    probabilities = None if has_one else _probs(doc["probabilities"])
    final = doc["final"]
    if type(final) is not bool:
        raise ValueError("final must be a boolean")
    reason = doc["reason"]
    if reason is not None and reason not in FINAL_REASONS:
        raise ValueError(f"reason must be null or one of {FINAL_REASONS}")
    if final != (reason is not None):
        raise ValueError("reason is set exactly on final records")
    return OutputRecord(
        sequence_id=_str(doc, "sequence_id"),
        step=_int(doc, "step"),
        probability=probability,
        probabilities=probabilities,
        final=final,
        reason=reason,
        model_version=_str(doc, "model_version"),
        partition=_opt_int(doc, "partition"),
        offset=_opt_int(doc, "offset"),
        ts=_opt_int(doc, "ts"),
    )


def _prob(v: object, name: str) -> float:
    if v is None:
        return math.nan  # how encode_output writes a non-finite output
    if type(v) is float or type(v) is int:
        return float(v)
    raise ValueError(f"{name} must be a number or null")


def _probs(v: object) -> tuple[float, ...]:
    if type(v) is not list or len(v) < 2:
        raise ValueError("probabilities must be a list of at least two numbers")
    return tuple(_prob(p, f"probabilities[{i}]") for i, p in enumerate(v))


def _str(doc: dict[str, Any], name: str) -> str:
    v = doc[name]
    if type(v) is not str:
        raise ValueError(f"{name} must be a string")
    return v


def _int(doc: dict[str, Any], name: str) -> int:
    v = doc[name]
    if type(v) is not int:
        raise ValueError(f"{name} must be an integer")
    return v


def _opt_int(doc: dict[str, Any], name: str) -> int | None:
    if doc[name] is None:
        return None
    return _int(doc, name)


def encode_outputs(
    outputs: Outputs, model_version: str, *, with_partition: bool = True
) -> list[bytes]:
    """Encoded values; `with_partition=False` writes a null partition (replay has none)."""
    values = outputs.values.tolist()  # one conversion to Python floats for the whole batch
    partitions: list[int | None] = (
        list(outputs.partitions) if with_partition else [None] * len(outputs.keys)
    )
    rows = zip(
        outputs.keys,
        outputs.steps,
        values,
        outputs.reasons,
        partitions,
        outputs.offsets,
        outputs.ts,
        strict=True,
    )
    if outputs.values.shape[1] == 1:  # the common model: the same object, built inline
        dumps = orjson.dumps
        return [
            dumps(
                {
                    "sequence_id": key,
                    "step": step,
                    "probability": value[0],
                    "final": reason is not None,
                    "reason": reason,
                    "model_version": model_version,
                    "partition": partition,
                    "offset": offset,
                    "ts": ts,
                }
            )
            for key, step, value, reason, partition, offset, ts in rows
        ]
    return [
        encode_output(
            sequence_id=key,
            step=step,
            outputs=value,
            final=reason is not None,
            reason=reason,
            model_version=model_version,
            partition=partition,
            offset=offset,
            ts=ts,
        )
        for key, step, value, reason, partition, offset, ts in rows
    ]
