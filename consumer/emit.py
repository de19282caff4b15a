"""Engine outputs to output-topic values, one per output, in order."""

from __future__ import annotations

from consumer.batch_result import Outputs
from consumer.messages import encode_output


def encode_outputs(
    outputs: Outputs, model_version: str, *, with_partition: bool = True
) -> list[bytes]:
    """Encoded values; `with_partition=False` writes a null partition (replay has none)."""
    values = outputs.values.tolist()  # one conversion to Python floats for the whole batch
    partitions: list[int | None] = (
        list(outputs.partitions) if with_partition else [None] * len(outputs.keys)
    )
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
        for key, step, value, reason, partition, offset, ts in zip(
            outputs.keys,
            outputs.steps,
            values,
            outputs.reasons,
            partitions,
            outputs.offsets,
            outputs.ts,
            strict=True,
        )
    ]
