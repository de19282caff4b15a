"""`python -m bench.stages`: the worker's per-record stages in one process, without a broker.

Real `confluent_kafka.Message` objects (single-sample values with `ts`, keys drawn from 10,000
live sequences) go through what `Runner._process` does with a micro-batch: read the fields and
decode (`decode_batch`), the engine (`process_batch`: key to slot, model step, bookkeeping),
encode (`encode_outputs`) and produce (`Sink.send_all` into a producer's local queue, no broker,
so the broker's side is not in it). Consume and checkpoint need a broker: the end-to-end run reads
them from the worker's `stage_seconds` metric. Prints microseconds per record by stage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Message, Producer

from bench import engine_bench, plans, workload
from consumer.codecs.input_batch import decode_batch
from consumer.codecs.inputs import encode_input
from consumer.codecs.outputs import encode_outputs
from consumer.model import load_step_function
from consumer.sink import Sink

STAGES = ("decode", "key_to_slot", "model_step", "bookkeeping", "encode", "produce")
_EPOCH_MS = 1_700_000_000_000


def messages(n_keys: int, batch: int, batches: int, seed: int = 3) -> list[list[Message]]:
    rng = np.random.default_rng(seed)
    out: list[list[Message]] = []
    offset = n_keys  # past the offsets the filled table holds
    for _ in range(batches):
        picks = rng.integers(0, n_keys, batch).tolist()
        rows = rng.normal(0.0, 1.0, (batch, workload.N_FEATURES)).round(5).tolist()
        msgs = []
        for key, row in zip(picks, rows, strict=True):
            offset += 1
            msgs.append(
                Message(
                    topic="input",
                    partition=0,
                    offset=offset,
                    key=workload.key_name(key).encode(),
                    value=encode_input(features=row, ts=_EPOCH_MS),
                    timestamp=(1, _EPOCH_MS),
                )
            )
        out.append(msgs)
    return out


def measure(model: Path, n_keys: int, batch: int, batches: int, warmup: int) -> dict[str, float]:
    """Microseconds per record by stage, over the batches after `warmup`."""
    step_fn = load_step_function(model, "numpy")
    _, engine = engine_bench.filled_table(step_fn, n_keys, seed=1)
    sink = Sink()
    # Nothing listens there: records stay queued, which is what `produce` costs the loop.
    sink.attach(Producer({"bootstrap.servers": "127.0.0.1:9", "linger.ms": 60_000,
                          "queue.buffering.max.messages": 10_000_000,
                          "queue.buffering.max.kbytes": 8_000_000, "log_level": 0}))  # fmt: skip
    seconds = dict.fromkeys(STAGES, 0.0)
    records = 0
    for i, msgs in enumerate(messages(n_keys, batch, batches + warmup)):
        t0 = time.perf_counter()
        keys = [m.key() for m in msgs]
        values = [m.value() for m in msgs]
        parts = [m.partition() or 0 for m in msgs]
        offsets = [m.offset() or 0 for m in msgs]
        stamps = [m.timestamp()[1] for m in msgs]
        times = np.asarray(stamps, np.float64) / 1000
        decoded = decode_batch(keys, values, parts, offsets, times,
                               n_features=step_fn.n_features, max_value_bytes=65536)  # fmt: skip
        t1 = time.perf_counter()
        result = engine.process_batch(decoded)
        t2 = time.perf_counter()
        encoded = encode_outputs(result.outputs, step_fn.version)
        t3 = time.perf_counter()
        sink.send_all("output", encoded, result.outputs.keys)
        t4 = time.perf_counter()
        if i < warmup:
            continue
        records += len(msgs)
        seconds["decode"] += t1 - t0
        seconds["key_to_slot"] += result.slot_seconds
        seconds["model_step"] += result.step_seconds
        seconds["bookkeeping"] += t2 - t1 - result.slot_seconds - result.step_seconds
        seconds["encode"] += t3 - t2
        seconds["produce"] += t4 - t3
    assert sink.producer is not None
    sink.producer.purge()
    return {stage: 1e6 * s / records for stage, s in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=70)
    parser.add_argument("--model", type=Path, help="model file (default: random weights)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or plans.default_model(Path(tmp))
        us = measure(model, args.keys, args.batch, args.batches, warmup=10)
    for stage, value in us.items():
        print(f"{stage:>12}  {value:6.3f} µs/record")
    print(f"{'total':>12}  {sum(us.values()):6.3f} µs/record")


if __name__ == "__main__":
    main()
