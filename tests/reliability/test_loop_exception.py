"""Scenario 9: an exception inside the loop. A real worker whose engine raises on one micro-batch
(tests.reliability.failing_worker) must exit non-zero and commit nothing of that batch; a restart
then reprocesses it, and every output is present and correct (no sample lost, no sequence split).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from producer_sim.cluster.processes import wait_for
from tests.kafka_harness import committed_offsets
from tests.reliability.accounting import expect
from tests.reliability.conftest import DeploymentFactory
from tests.reliability.phases import feed
from tests.reliability.scenario import assert_clean, conclude
from tests.reliability.stage import PARTITIONS, Stage
from tests.reliability.test_hard_kills import stream

FAIL_ON_BATCH = 30
MAX_BATCH = 64  # the failure lands well inside the input


def test_an_exception_in_the_loop_commits_nothing_of_its_batch(
    stage: Stage, deployment: DeploymentFactory, tmp_path: Path
) -> None:
    p = stage.profile
    records = stream(np.random.default_rng(800), p.crash_sequences, 20, "crash")
    dep = deployment(extra_args=("--max-batch", str(MAX_BATCH)))
    fleet = dep.fleet
    started = time.monotonic()
    failed_batch = tmp_path / "failed-batch.txt"
    failing = fleet.start(
        "w0",
        module="tests.reliability.failing_worker",
        env={"FAIL_ON_BATCH": str(FAIL_ON_BATCH), "FAIL_POSITIONS_FILE": str(failed_batch)},
    )
    failing.wait_ready()
    sent = feed(dep, records)
    wait_for(lambda: not failing.alive() or None, 300, "the failing worker to exit")
    assert failing.proc is not None
    exit_code = failing.proc.wait()
    fleet.running()[0].fate = "killed"  # its exit was injected, not a crash of the service
    first_failed: dict[int, int] = {}
    for part, off in (map(int, ln.split()) for ln in failed_batch.read_text().splitlines()):
        first_failed[part] = min(off, first_failed.get(part, off))
    committed = committed_offsets(dep.bootstrap, dep.group, dep.input, PARTITIONS)
    # Committing offset o means "everything before o is done": a failed record must be >= o.
    past = {q: (committed[q], o) for q, o in first_failed.items() if committed[q] > o}
    fleet.start("w0")  # the same pod restarted, without the fault
    expected = expect(sent, stage.model, workdir=tmp_path, keras=True)
    summary = conclude(
        dep,
        scenario="loop-exception",
        expected=expected,
        started=started,
        drain_timeout_s=600,
        details={
            "sequences": p.crash_sequences,
            "exit_code": exit_code,
            "failed_batch_records": sum(1 for _ in failed_batch.read_text().splitlines()),
            "committed_past_failed_batch": {str(q): v for q, v in past.items()},
        },
    )
    problems = []
    if exit_code == 0:
        problems.append("the failing worker exited 0")
    if past:
        problems.append(
            f"offsets committed past the failed batch (committed, first failed): {past}"
        )
    assert not problems, "; ".join(problems) + "\n" + summary.describe()
    assert_clean(summary)
