"""Running real worker processes (`producer_sim.cluster.worker`) against a real broker, and
reading what they wrote.

The oracle they are compared with is Keras on every prefix of the input topic as it lies
(`tests/keras_oracle.py`, fed by `topic_inputs`). Outputs are read until the output topic is
quiet and the group has committed the whole input, not until an expected count, so late repeats
and extra finals are seen; repeats must be bit-identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient

from consumer.codecs.inputs import InputRecord, decode_input, encode_input
from consumer.codecs.outputs import OutputRecord, decode_output
from producer_sim.cluster.env import TF_DEFAULTS, child_env
from producer_sim.cluster.worker import Worker
from tests.kafka_harness import QuietReader, committed_offsets, consume_until, lag_zero, reader

# Failure detection in seconds rather than librdkafka's 45 s default (the broker's minimum session
# timeout is 6 s): a stopped worker's partitions move on quickly, also once workers are static
# group members (their instance id), which do not leave the group when they close.
FAST_FAILOVER = {
    "KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
}
Record = tuple[str, bytes]  # (key, value bytes)


def save_user_model(path: Path, seed: int = 3, units: tuple[int, int] = (32, 16)) -> Path:
    """The user's architecture (without Flatten) with random weights; fast, no training."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras  # noqa: PLC0415  (heavy, only where a model is built)

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.LSTM(units[0], return_sequences=True),
            keras.layers.LeakyReLU(0.1),
            keras.layers.Dropout(0.2),
            keras.layers.LSTM(units[1]),
            keras.layers.Dropout(0.2),
            keras.layers.LeakyReLU(0.1),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.save(path)
    return path


def interleaved_stream(
    rng: np.random.Generator,
    n_sequences: int,
    *,
    max_len: int = 20,
    key_prefix: str = "seq",
) -> list[Record]:
    """Sequences of random length 1..max_len, interleaved at random; some chunked, some ended
    inline or by a bare marker, some reset and restarted under the same key."""
    pending: list[list[Record]] = []
    for i in range(n_sequences):
        key = f"{key_prefix}-{i}"
        msgs: list[Record] = []
        for part in range(1 + int(rng.random() < 0.1)):  # a tenth restart after a reset
            length = int(rng.integers(1, max_len + 1))
            rows = rng.normal(0, 1, (length, 3)).round(4).tolist()
            j = 0
            while j < length:
                take = int(rng.integers(2, 5)) if rng.random() < 0.2 else 1
                chunk = rows[j : j + take]
                reset = part == 1 and j == 0
                j += len(chunk)
                features = chunk if len(chunk) > 1 or rng.random() < 0.5 else chunk[0]
                end = j >= length and rng.random() < 0.3
                msgs.append((key, encode_input(features=features, end=end, reset=reset)))
            if rng.random() < 0.2:
                msgs.append((key, encode_input(end=True)))
        pending.append(msgs)
    out: list[Record] = []
    cursors = [0] * n_sequences
    live = list(range(n_sequences))
    while live:
        k = int(rng.integers(len(live)))
        i = live[k]
        out.append(pending[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(pending[i]):
            live[k] = live[-1]
            live.pop()
    return out


def dedupe(outputs: Iterable[OutputRecord]) -> tuple[list[OutputRecord], int]:
    """Outputs without repeats of the same input position (at-least-once redelivery), and how
    many repeats there were. A repeat must be identical to the first: checked here."""
    first: dict[tuple[str, int | None, int | None, int, bool], OutputRecord] = {}
    kept: list[OutputRecord] = []
    repeats = 0
    for out in outputs:
        ident = (out.sequence_id, out.partition, out.offset, out.step, out.final)
        seen = first.get(ident)
        if seen is None:
            first[ident] = out
            kept.append(out)
        else:
            assert seen.outputs == out.outputs, f"a repeated output differs: {seen} vs {out}"
            repeats += 1
    return kept, repeats


def distinct(outputs: Iterable[OutputRecord]) -> set[tuple[str, int | None, int | None, int, bool]]:
    """The input positions (with step and finality) that have an output."""
    return {(o.sequence_id, o.partition, o.offset, o.step, o.final) for o in outputs}


def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    n = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key.encode())
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    assert producer.flush(60) == 0
    return n


def topic_inputs(
    bootstrap: str, topic: str, partitions: int, skip_rejected: bool = False
) -> list[InputRecord]:
    """An input topic as it lies, every record decoded with its position: all valid, or with
    `skip_rejected` those the service sends to the dead-letter topic left out."""
    quiet = QuietReader(bootstrap, topic, partitions)
    try:
        msgs = quiet.read_until_quiet(2.0, 60.0)
    finally:
        quiet.close()
    records = []
    for m in msgs:
        rec = decode_input(m.key(), m.value(), n_features=3, partition=m.partition() or 0,
                           offset=m.offset() or 0)  # fmt: skip
        if skip_rejected and not isinstance(rec, InputRecord):
            continue
        assert isinstance(rec, InputRecord), rec
        records.append(rec)
    return records


def decoded(msgs: Iterable[Message]) -> list[OutputRecord]:
    values = (m.value() for m in msgs)
    return [decode_output(v) for v in values if v is not None]


@dataclass
class Deployment:
    """One service deployment under test: its topics, group and model, and its workers."""

    bootstrap: str
    input: str
    output: str
    dlq: str
    group: str
    model: Path
    workdir: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def changelog(self) -> str:
        return f"{self.group}-state-changelog"

    def worker(
        self,
        *extra: str,
        model: Path | None = None,
        name: str = "w",
        env: Mapping[str, str] | None = None,
    ) -> Worker:
        """Start one more worker, with an instance id of its own; `extra` flags come last and
        win, as `env` does over the harness's environment."""
        n = len(self.workers)
        args = [
            "--bootstrap-servers", self.bootstrap,
            "--input-topic", self.input,
            "--output-topic", self.output,
            "--dlq-topic", self.dlq,
            "--group-id", self.group,
            "--model", str(model or self.model),
            "--create-topics",
            "--metrics-addr", "127.0.0.1",
            "--log-format", "json",
            "--commit-interval-ms", "200",
            "--instance-id", f"{name}{n}",
            *extra,
        ]  # fmt: skip
        environment = child_env({**TF_DEFAULTS, **FAST_FAILOVER, **(env or {})})
        w = Worker(args, self.workdir / f"{name}{n}.log", environment).start()
        self.workers.append(w)
        return w

    def outputs(
        self,
        at_least: int = 0,
        isolation: str = "read_committed",
        timeout_s: float = 120.0,
        quiet_s: float = 2.0,
    ) -> list[OutputRecord]:
        """Every output, read until the output topic is quiet for `quiet_s`, the group has
        committed the whole input and there are `at_least` distinct outputs: not until a count,
        so late repeats and extra finals are read too. Not quiet in `timeout_s`: TimeoutError."""
        partitions = self._partitions(self.output)
        inputs = self._partitions(self.input)
        quiet = QuietReader(self.bootstrap, self.output, partitions, isolation)

        def settled() -> bool:
            enough = len(distinct(decoded(quiet.received))) >= at_least
            return enough and lag_zero(self.bootstrap, self.group, self.input, inputs)

        try:
            msgs = quiet.read_until_quiet(quiet_s, timeout_s, settled)
        finally:
            quiet.close()
        return decoded(msgs)

    def progress(
        self, count: int, isolation: str = "read_committed", timeout_s: float = 120.0
    ) -> None:
        """Until `count` distinct outputs exist: a point in a test's story, not its final read."""
        consumer = reader(self.bootstrap, self.output, self._partitions(self.output), isolation)
        try:
            consume_until(consumer, lambda got: len(distinct(decoded(got))) >= count, timeout_s)
        finally:
            consumer.close()

    def checkpointed(self) -> bool:
        """Whether the group has committed input offsets (so its state is in the changelog)."""
        committed = committed_offsets(
            self.bootstrap, self.group, self.input, self._partitions(self.input)
        )
        return any(offset > 0 for offset in committed.values())

    def _partitions(self, topic: str) -> int:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)

    def stop_all(self) -> None:
        for w in self.workers:
            if w.alive():
                w.kill()
