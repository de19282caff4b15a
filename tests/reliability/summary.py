"""One scenario's result: the figures every scenario reports, written as JSON to the results
folder (RELIABILITY_RESULTS, else a temporary folder) and tabled by `tests.reliability.report`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.reliability.accounting import DlqTally, Tally


@dataclass(frozen=True)
class Summary:
    scenario: str
    mode: str
    guarantee: str
    records_in: int
    samples_in: int
    outputs_expected: int
    outputs_out: int
    lost: int
    duplicated: int
    wrong: int
    repeats_differing: int  # at-least-once repeats not bit-identical to their first copy
    dlq_records: int
    dlq_reasons: dict[str, int]
    dlq_missing: int
    dlq_misfiled: int
    worker_crashes: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)  # the scenario's own figures
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.guarantee}"

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        path.write_bytes(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
        return path

    def describe(self) -> str:
        head = ", ".join(
            f"{k}={v}"
            for k, v in asdict(self).items()
            if k not in ("problems", "details", "dlq_reasons")
        )
        details = {k: v for k, v in self.details.items() if k != "timeline"}
        text = f"{head}\ndetails={details}\nproblems:\n  " + "\n  ".join(self.problems)
        timeline = self.details.get("timeline")
        if timeline:
            text += "\nworkers' timeline:\n  " + "\n  ".join(timeline)
        return text


def summarize(
    *,
    scenario: str,
    mode: str,
    guarantee: str,
    records_in: int,
    samples_in: int,
    outputs: Tally,
    dlq: DlqTally | None,
    crashes: int,
    seconds: float,
    details: dict[str, Any] | None = None,
) -> Summary:
    return Summary(
        scenario=scenario,
        mode=mode,
        guarantee=guarantee,
        records_in=records_in,
        samples_in=samples_in,
        outputs_expected=outputs.outputs_expected,
        outputs_out=outputs.outputs_out,
        lost=outputs.lost,
        duplicated=outputs.duplicated,
        wrong=outputs.wrong,
        repeats_differing=outputs.repeats_differing,
        dlq_records=dlq.records if dlq else 0,
        dlq_reasons=dlq.reasons if dlq else {},
        dlq_missing=dlq.missing if dlq else 0,
        dlq_misfiled=dlq.misfiled if dlq else 0,
        worker_crashes=crashes,
        seconds=round(seconds, 1),
        details=details or {},
        problems=outputs.problems + (dlq.problems if dlq else ()),
    )


def results_folder(fallback: Path) -> Path:
    configured = os.environ.get("RELIABILITY_RESULTS")
    return Path(configured) if configured else fallback


def load(folder: Path) -> list[dict[str, Any]]:
    return [orjson.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]
