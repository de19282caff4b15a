"""What a user would write instead of the service: a Quix Streams application that scores every
record with the same model step, one record at a time, keeping each key's recurrent state in
Quix's own state store (RocksDB, made durable by Quix through a changelog topic of its own).

    <peer python> -m bench.peers.quix_scorer --bootstrap H:P --input T --output T --group G \
        --guarantee at-least-once|exactly-once --commit-interval-ms N --model M --state-dir D

Written as Quix's documentation teaches: an `Application` with the group, guarantee and commit
interval; topics with JSON (de)serializers; a `StreamingDataFrame` whose stateful `apply` reads
the key's state, advances the model and writes the state back; `to_topic` for the outputs. The
model step is the service's numpy step (`consumer.model`) at batch size one: the fastest step a
user of this project has, and the same arithmetic, so the difference measured is the per-record
framework against the service's batched loop. Bad input is not dead-lettered here (the
benchmark's input is valid).

Runs in a virtual environment of its own (Quix pins confluent-kafka below 2.13, older than the
service's): `scripts/install-quix-peer.sh` builds it and prints its python. Stops on SIGTERM
(Quix's own handler: it commits what it processed and exits 0).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

import numpy as np
from quixstreams import Application, State

from consumer.model import load_step_function

_STATE = "lstm"  # the key's state tensors, one float32 blob in plan order
_STEP = "step"  # samples scored in the key's current sequence


def build(args: argparse.Namespace) -> Application:
    step_fn = load_step_function(args.model)
    sizes = step_fn.state_sizes
    bounds = np.cumsum((0, *sizes))
    n_features, version = step_fn.n_features, step_fn.version

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval_ms / 1000,
        processing_guarantee=args.guarantee,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    inputs = app.topic(args.input, key_deserializer="str", value_deserializer="json")
    outputs = app.topic(args.output, key_serializer="str", value_serializer="json")

    def score(
        value: dict[str, Any], key: str, timestamp: int, headers: Any, state: State
    ) -> list[dict[str, Any]]:
        """One input record: its samples through the model, one output each."""
        blob = None if value.get("reset") else state.get_bytes(_STATE)
        flat = np.zeros(bounds[-1], np.float32) if blob is None else np.frombuffer(blob, np.float32)
        states = [flat[a:b].reshape(1, -1).copy() for a, b in itertools.pairwise(bounds)]
        step = 0 if blob is None else state.get(_STEP, 0)
        rows = np.asarray(value.get("features", []), np.float32).reshape(-1, n_features)
        scored = []
        for row in rows:
            probability = float(step_fn.step(row.reshape(1, -1), states)[0, 0])
            step += 1
            scored.append({"sequence_id": key, "step": step, "probability": probability,
                           "model_version": version, "ts": value.get("ts")})  # fmt: skip
        if value.get("end"):
            state.delete(_STATE)
            state.delete(_STEP)
        else:
            state.set_bytes(_STATE, np.concatenate([s.ravel() for s in states]).tobytes())
            state.set(_STEP, step)
        return scored

    sdf = app.dataframe(inputs)
    sdf = sdf.apply(score, stateful=True, metadata=True, expand=True)
    sdf.to_topic(outputs)
    return app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quix_scorer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--guarantee", choices=("at-least-once", "exactly-once"), required=True)
    parser.add_argument("--commit-interval-ms", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--state-dir", required=True)
    build(parser.parse_args(argv)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
