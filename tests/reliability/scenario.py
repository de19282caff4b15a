"""The end every scenario shares: wait for the input to be committed, read the outputs until the
topic is quiet, stop the workers cleanly, read on until quiet again, count against the oracle(s),
write the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.kafka_harness import QuietReader
from tests.reliability.accounting import Expected, dlq_tally, tally
from tests.reliability.output_table import OutputTable
from tests.reliability.stage import PARTITIONS, Deployment
from tests.reliability.summary import Summary, summarize

QUIET_S = 3.0  # no new output for this long (with the input committed): the topic is quiet


def conclude(
    dep: Deployment,
    *,
    scenario: str,
    expected: Expected,
    started: float,
    drain_timeout_s: float,
    details: dict[str, Any] | None = None,
    before_stop: Callable[[], dict[str, Any]] | None = None,
    quiet_s: float = QUIET_S,
    settled: Callable[[], bool] = lambda: True,
) -> Summary:
    """`before_stop`, if given, runs once the input is committed and the outputs are quiet, while
    the workers still run, and adds figures to the details.

    The outputs are read while the workers still run until the output topic has been quiet for
    `quiet_s` with the whole input committed (and `settled()`, for a scenario that waits for
    more, such as idle finals), then again after the clean stop: late repeats and extra finals
    count. A drain that does not end in time fails the scenario."""
    details = dict(details or {})
    outputs = QuietReader(dep.bootstrap, dep.output, PARTITIONS, dep.isolation)
    got = OutputTable()
    outputs.on_value = lambda value: got.add_value(value) if value is not None else None
    try:
        try:
            details["drain_seconds"] = round(dep.wait_drained(drain_timeout_s), 1)
            outputs.read_until_quiet(quiet_s, drain_timeout_s, lambda: dep.lag_zero() and settled())
        except (TimeoutError, AssertionError) as exc:
            details["drain_failed"] = str(exc)  # the summary is still written
        seconds = time.monotonic() - started
        if before_stop is not None:
            details.update(before_stop())
        dep.fleet.stop_all()
        try:
            outputs.read_until_quiet(quiet_s, drain_timeout_s)
        except TimeoutError as exc:
            details["drain_failed"] = f"after the stop: {exc}"
    finally:
        outputs.close()
    tallied = tally(expected.outputs, got)
    if expected.replay is not None:
        # The replay command against the same live outputs: Keras and the engine agree.
        check = tally(expected.replay, got)
        details["replay_disagrees"] = check.lost + check.wrong
        if check.lost + check.wrong:
            details["replay_problems"] = list(check.problems[:5])
    dlq = dlq_tally(expected.bad, dep.read(dep.dlq, 1), dep.input)
    crashes = dep.fleet.crashes()
    if crashes:
        details["crash_report"] = dep.fleet.crash_report()[-4000:]
    details["worker_starts"] = len(dep.fleet.launches)
    if tallied.lost or tallied.wrong:
        # Which worker held which partition when, and what it restored: the logs go with the
        # test's directory, so a failure in CI has to carry this itself.
        details["timeline"] = dep.fleet.timeline()
    summary = summarize(
        scenario=scenario,
        mode=dep.stage.profile.mode,
        guarantee=dep.guarantee,
        records_in=expected.records,
        samples_in=expected.samples,
        outputs=tallied,
        dlq=dlq,
        crashes=len(crashes),
        seconds=seconds,
        details=details,
    )
    summary.write(dep.stage.results)
    return summary


def assert_clean(summary: Summary) -> None:
    """Nothing lost, nothing wrong, no crash, every bad record dead-lettered with its reason;
    and exactly-once: nothing duplicated for a read_committed reader."""
    problems = []
    if summary.lost or summary.wrong:
        problems.append(f"{summary.lost} lost, {summary.wrong} wrong")
    if summary.repeats_differing:
        problems.append(f"{summary.repeats_differing} repeat(s) not bit-identical to the first")
    if summary.details.get("replay_disagrees"):
        problems.append(f"replay disagrees on {summary.details['replay_disagrees']} output(s)")
    if summary.details.get("drain_failed"):
        problems.append(f"drain: {summary.details['drain_failed']}")
    if summary.guarantee == "exactly-once" and summary.duplicated:
        problems.append(f"{summary.duplicated} duplicated under exactly-once")
    if summary.worker_crashes:
        problems.append(f"{summary.worker_crashes} worker crash(es)")
    if summary.dlq_missing or summary.dlq_misfiled:
        problems.append(f"DLQ: {summary.dlq_missing} missing, {summary.dlq_misfiled} misfiled")
    if summary.outputs_expected == 0:
        problems.append("no output was expected: the scenario checked nothing")
    assert not problems, "; ".join(problems) + "\n" + summary.describe()
