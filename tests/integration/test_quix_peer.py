"""The Quix Streams peer of the benchmarks (`bench/peers/quix_scorer.py`) scores what the
service scores: on a real broker, in its own virtual environment, every output equals Keras
`model(x)` on that prefix of its sequence. A peer that computed something else would make the
benchmark's ratio meaningless. Outputs are read until the topic is quiet."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench.peers.quix import quix_peer, quix_python
from consumer.codecs.inputs import encode_input
from tests.kafka_harness import NewTopicFactory, QuietReader, lag_zero
from tests.keras_oracle import expected_outputs
from tests.service_harness import Record, produce, save_user_model, topic_inputs

PARTITIONS = 3
TOLERANCE = 1e-5


def records(rng: np.random.Generator) -> list[Record]:
    """Interleaved sequences of 12 keys: single samples, chunks of three, and ends (with a
    sample, so every input has an output the peer writes)."""
    out: list[Record] = []
    for i in range(240):
        key = f"k{int(rng.integers(0, 12))}"
        rows = rng.normal(0.0, 1.0, (3 if i % 5 == 0 else 1, 3)).round(4).tolist()
        end = i % 37 == 36
        out.append((key, encode_input(features=rows if len(rows) > 1 else rows[0], end=end)))
    return out


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_the_quix_peer_scores_every_prefix_as_keras_does(
    guarantee: str,
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    unique_group: Callable[[], str],
    tmp_path: Path,
) -> None:
    model = save_user_model(tmp_path / "model.keras")
    source, sink, group = new_topic(PARTITIONS), new_topic(PARTITIONS), unique_group()
    sent = records(np.random.default_rng(5))
    produce(kafka_bootstrap, source, sent)
    peer = quix_peer(quix_python(), bootstrap=kafka_bootstrap, input_topic=source,
                     output_topic=sink, group=group, guarantee=guarantee, commit_interval_ms=200,
                     model=model, workdir=tmp_path).start()  # fmt: skip
    quiet = QuietReader(kafka_bootstrap, sink, PARTITIONS)

    def settled(alive: Callable[[], None]) -> bool:
        alive()  # a peer that exited fails the test with its log
        return lag_zero(kafka_bootstrap, group, source, PARTITIONS)

    try:
        got = quiet.read_until_quiet(3.0, 180.0, lambda: settled(peer.check_alive))
    finally:
        quiet.close()
        code = peer.stop()
    assert code == 0, peer.log_path.read_text()[-3000:]

    # The oracle, from the inputs as they lie in the topic. The peer's outputs carry no
    # partition or offset: each key's outputs, in the order they lie in the output topic (one
    # partition per key), are compared with its sequences' outputs in input order.
    good = topic_inputs(kafka_bootstrap, source, PARTITIONS)
    assert len(good) == len(sent)
    want: dict[str, list[tuple[int, float]]] = defaultdict(list)
    oracle = expected_outputs(model, good)
    for ident in sorted(oracle, key=lambda i: (i[2], i[3])):  # a key's: by offset, then step
        probability = oracle[ident].probability
        assert probability is not None
        want[ident[0]].append((ident[3], probability))
    seen: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for m in got:
        doc = orjson.loads(m.value() or b"null")
        assert m.key() == doc["sequence_id"].encode()
        seen[doc["sequence_id"]].append((doc["step"], doc["probability"]))

    # Every output once, in order: none lost, none repeated, no extra.
    assert {k: [s for s, _ in v] for k, v in seen.items()} == {
        k: [s for s, _ in v] for k, v in want.items()
    }
    wrong = [
        (key, step, p, q)
        for key, outs in seen.items()
        for (step, p), (_, q) in zip(outs, want[key], strict=True)
        if abs(p - q) > TOLERANCE
    ]
    assert not wrong, wrong[:5]
