"""The evaluation report: `report.json` (every figure), `report.png` (see `figure`), and the few
lines printed at the end of a run."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import orjson

from consumer.training.synthetic import TRAINED_LENGTH
from producer_sim.evaluation.scores import Evaluation, StepScore


def report_document(ev: Evaluation, source: dict[str, object]) -> dict[str, object]:
    """The JSON report; `source` says what was read (topic, labels file, stop reason)."""
    return {
        "source": source,
        "complete": ev.all_complete,
        "sequences": {
            "labelled": ev.labelled,
            "complete": ev.complete,
            "cut_short": ev.cut_short,
        },
        "outputs": {
            "read": ev.outputs,
            "repeats": ev.repeats,
            "other_keys": ev.unlabelled_outputs,
        },
        "model_versions": list(ev.model_versions),
        "trained_length": TRAINED_LENGTH,
        "threshold": 0.5,
        "final_step": _step(ev.final),
        "by_step": [_step(s) for s in ev.by_step],
        "latency_ms": asdict(ev.latency),
        "trajectories": [asdict(t) for t in ev.trajectories],
    }


def _step(s: StepScore) -> dict[str, object]:
    out = asdict(s)
    if s.step == 0:
        del out["step"]
    return out


def write_report(ev: Evaluation, source: dict[str, object], report_dir: Path) -> tuple[Path, Path]:
    """Writes report.json and report.png into `report_dir`; returns their paths."""
    try:
        from producer_sim.evaluation.figure import draw  # noqa: PLC0415  (matplotlib is slow to import)
    except ImportError as error:
        raise RuntimeError(
            f"the report's figure needs matplotlib ({error}): install lstm-stream-scorer[report]"
        ) from error

    report_dir.mkdir(parents=True, exist_ok=True)
    json_path = report_dir / "report.json"
    json_path.write_bytes(
        orjson.dumps(report_document(ev, source), option=orjson.OPT_INDENT_2) + b"\n"
    )
    png_path = report_dir / "report.png"
    draw(ev, png_path)
    return json_path, png_path


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def summary_lines(ev: Evaluation) -> list[str]:
    f, lat = ev.final, ev.latency
    steps = "  ".join(f"{s.step}:{_fmt(s.roc_auc)}" for s in ev.by_step)
    return [
        f"sequences: {ev.complete:,} of {ev.labelled:,} labelled scored to their last step"
        f" ({ev.outputs:,} outputs, {ev.repeats:,} repeats)",
        f"final step: ROC AUC {_fmt(f.roc_auc)}, accuracy {_fmt(f.accuracy)}"
        f" over {f.count:,} sequences ({f.positives:,} positive;"
        f" {ev.cut_short:,} cut short by the end of the run left out)",
        f"ROC AUC by steps seen: {steps}",
        f"end-to-end latency ms: p50 {_fmt(lat.p50_ms, 0)}, p95 {_fmt(lat.p95_ms, 0)},"
        f" p99 {_fmt(lat.p99_ms, 0)}, max {_fmt(lat.max_ms, 0)} ({lat.count:,} outputs)",
    ]
