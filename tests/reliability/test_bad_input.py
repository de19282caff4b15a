"""Scenario 4: the malformed-input corpus (every rejection reason, many times over) and thousands of
hypothesis-generated records, interleaved with good sequences, through one live worker. Every bad
record reaches the dead-letter topic with its reason, the worker never crashes, and every good
record is scored as the oracle scores it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from consumer.codecs.inputs import REJECT_REASONS
from tests.bad_inputs import BAD_INPUTS
from tests.reliability.accounting import Sent, classify, expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.feeder import Feeder, Raw
from tests.reliability.hostile import generated_records
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import Stage
from tests.reliability.test_hard_kills import stream

CORPUS_ROUNDS = 5  # each corpus case is sent this many times, at different places


def interleave(rng: np.random.Generator, good: list[Raw], bad: list[Raw]) -> list[Raw]:
    """`bad` scattered at random among `good`, whose order is kept (it is per-key order)."""
    slots = np.sort(rng.integers(0, len(good) + 1, len(bad)))
    order = rng.permutation(len(bad))
    out: list[Raw] = []
    j = 0
    for i, record in enumerate(good):
        while j < len(bad) and slots[j] <= i:
            out.append(bad[order[j]])
            j += 1
        out.append(record)
    out.extend(bad[order[k]] for k in range(j, len(bad)))
    return out


def test_bad_input(stage: Stage, deployment: DeploymentFactory, tmp_path: Path) -> None:
    p = stage.profile
    rng = np.random.default_rng(400)
    dep = deployment()
    started = time.monotonic()
    worker = dep.fleet.start("w0")  # starts while the records are generated
    corpus: list[Raw] = [(case.key, case.value) for case in BAD_INPUTS] * CORPUS_ROUNDS
    generated = generated_records(p.generated_bad)
    good = stream(rng, p.bad_good_sequences, 20, "good")
    records = interleave(rng, good, corpus + generated)
    worker.wait_ready(180)
    feeder = Feeder(dep.bootstrap, dep.input, records)
    feeder.start()
    sent = feeder.result()
    expected = expect(sent, stage.model, workdir=tmp_path)
    # How many generated records are bad, decoded on their own as the service decodes them.
    generated_bad = len(classify([Sent(k, v, 0, i) for i, (k, v) in enumerate(generated)]).bad)
    summary = conclude(
        dep,
        scenario="bad-input",
        expected=expected,
        started=started,
        drain_timeout_s=300,
        details={
            "corpus_kinds": len(BAD_INPUTS),
            "corpus_records": len(corpus),
            "generated_records": len(generated),
            "generated_bad": generated_bad,
            "good_sequences": p.bad_good_sequences,
        },
    )
    assert_clean(summary)
    assert len(BAD_INPUTS) >= 30 and len(generated) >= 10_000
    assert summary.dlq_records >= len(expected.bad) > len(corpus)
    assert set(summary.dlq_reasons) == set(REJECT_REASONS)  # every reason seen, and no other
