"""The end every scenario shares: wait for the input to be committed, stop the workers cleanly,
read the output and dead-letter topics to their end, count against the oracle, write the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.reliability.accounting import Expected, dlq_tally, outputs_of, tally
from tests.reliability.stage import Deployment
from tests.reliability.summary import Summary, summarize


def conclude(
    dep: Deployment,
    *,
    scenario: str,
    expected: Expected,
    started: float,
    drain_timeout_s: float,
    details: dict[str, Any] | None = None,
    before_stop: Callable[[], dict[str, Any]] | None = None,
) -> Summary:
    """`before_stop`, if given, runs once the input is committed, while the workers still run,
    and adds figures to the details."""
    details = dict(details or {})
    try:
        details["drain_seconds"] = round(dep.wait_drained(drain_timeout_s), 1)
    except (TimeoutError, AssertionError) as exc:
        # Counted below as lost outputs; the summary is still written.
        details["drain_failed"] = str(exc)
    seconds = time.monotonic() - started
    if before_stop is not None:
        details.update(before_stop())
    dep.fleet.stop_all()
    outputs = tally(expected.outputs, outputs_of(dep.read(dep.output)))
    dlq = dlq_tally(expected.bad, dep.read(dep.dlq, 1), dep.input)
    crashes = dep.fleet.crashes()
    if crashes:
        details["crash_report"] = dep.fleet.crash_report()[-4000:]
    details["worker_starts"] = len(dep.fleet.launches)
    summary = summarize(
        scenario=scenario,
        mode=dep.stage.profile.mode,
        guarantee=dep.guarantee,
        records_in=expected.records,
        samples_in=expected.samples,
        outputs=outputs,
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
    if summary.guarantee == "exactly-once" and summary.duplicated:
        problems.append(f"{summary.duplicated} duplicated under exactly-once")
    if summary.worker_crashes:
        problems.append(f"{summary.worker_crashes} worker crash(es)")
    if summary.dlq_missing or summary.dlq_misfiled:
        problems.append(f"DLQ: {summary.dlq_missing} missing, {summary.dlq_misfiled} misfiled")
    if summary.outputs_expected == 0:
        problems.append("no output was expected: the scenario checked nothing")
    assert not problems, "; ".join(problems) + "\n" + summary.describe()
