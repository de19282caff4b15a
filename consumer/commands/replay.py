"""`python -m consumer replay`: the streaming engine over a JSON-lines file, without Kafka.

Each input line is `{"key": "<sequence id>", "value": <input value object>}`, optionally with
`"partition": <n>` (the input partition, default 0); each output line is one output value.
Offsets are the 1-based line numbers; partitions are null. Bad lines, and lines of a key whose
sequence is on another partition (`wrong_partition`), are reported on stderr with their line
number and skipped, exactly as the service sends them to the dead-letter topic. The result is the
same whatever `--batch` is: that is the engine's contract.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator
from typing import BinaryIO

import orjson

from consumer.codecs.inputs import DEFAULT_MAX_VALUE_BYTES, InputRecord, Rejection, decode_input
from consumer.codecs.outputs import encode_outputs
from consumer.engine.scoring import Engine
from consumer.engine.state_table import StateTable
from consumer.model import ModelError, load_step_function
from consumer.model.step import BACKENDS, BackendName


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m consumer replay",
        description="Score a JSON-lines file of input records with the streaming engine.",
    )
    parser.add_argument("--model", required=True, help="Keras model file (.keras or .h5)")
    parser.add_argument("--input", required=True, help="JSON lines: {key, value} per line")
    parser.add_argument("--output", required=True, help="JSON lines: one output value per line")
    parser.add_argument("--backend", choices=BACKENDS, default="numpy")
    parser.add_argument("--batch", type=int, default=1024, help="records per micro-batch")
    parser.add_argument("--max-steps", type=int, default=0, help="end sequences after N samples")
    parser.add_argument("--max-value-bytes", type=int, default=DEFAULT_MAX_VALUE_BYTES)
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.max_steps < 0:
        parser.error("--max-steps must be at least 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    backend: BackendName = args.backend
    try:
        step_fn = load_step_function(args.model, backend)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gc.freeze()  # see consumer.commands.run: the model's loading left objects the GC need not walk
    engine = Engine(
        step_fn, StateTable(step_fn.state_sizes, step_fn.n_outputs), max_steps=args.max_steps
    )
    bad = 0
    with open(args.input, "rb") as src, open(args.output, "wb") as dst:
        batch: list[InputRecord] = []
        for lineno, item in _records(src, step_fn.n_features, args.max_value_bytes):
            if isinstance(item, Rejection):
                bad += 1
                _report(lineno, item)
                continue
            batch.append(item)
            if len(batch) >= args.batch:
                bad += _flush(engine, batch, dst, step_fn.version)
        bad += _flush(engine, batch, dst, step_fn.version)
    if bad:
        print(f"{bad} bad line(s) skipped", file=sys.stderr)
    return 0


def _records(
    src: BinaryIO, n_features: int, max_value_bytes: int
) -> Iterator[tuple[int, InputRecord | Rejection]]:
    for lineno, line in enumerate(src, start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield lineno, Rejection("invalid_json", f"line is not JSON: {exc}")
            continue
        if type(doc) is not dict or "value" not in doc:
            yield lineno, Rejection("not_an_object", 'a line is {"key": ..., "value": {...}}')
            continue
        key = doc.get("key")
        key_bytes = key.encode() if type(key) is str else None
        partition = doc.get("partition", 0)
        if type(partition) is not int or partition < 0:
            yield lineno, Rejection("invalid_field", "partition must be an integer >= 0")
            continue
        value = orjson.dumps(doc["value"])
        yield (
            lineno,
            decode_input(
                key_bytes,
                value,
                n_features=n_features,
                partition=partition,
                offset=lineno,
                max_value_bytes=max_value_bytes,
            ),
        )


def _report(lineno: int, rejection: Rejection) -> None:
    print(f"line {lineno}: {rejection.reason}: {rejection.detail}", file=sys.stderr)


def _flush(engine: Engine, batch: list[InputRecord], dst: BinaryIO, version: str) -> int:
    """Score a batch; returns how many of its lines the engine refused (reported on stderr)."""
    if not batch:
        return 0
    result = engine.process(batch, 0.0)
    for value in encode_outputs(result.outputs, version, with_partition=False):
        dst.write(value + b"\n")
    for r in result.rejected:
        _report(r.record.offset, r.rejection)  # offsets are line numbers
    batch.clear()
    return len(result.rejected)
