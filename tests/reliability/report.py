"""`python -m tests.reliability.report [FOLDER] [--markdown]`: the scenario summaries in FOLDER
(default build/reliability, where `make reliability` writes them) as one table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tests.reliability.summary import load

COLUMNS = (
    ("scenario", "scenario"),
    ("guarantee", "guarantee"),
    ("mode", "mode"),
    ("records in", "records_in"),
    ("samples", "samples_in"),
    ("outputs out", "outputs_out"),
    ("expected", "outputs_expected"),
    ("lost", "lost"),
    ("dup", "duplicated"),
    ("wrong", "wrong"),
    ("dup differs", "repeats_differing"),
    ("DLQ", "dlq_records"),
    ("crashes", "worker_crashes"),
    ("s", "seconds"),
)
# The figures each scenario adds, in the order they are shown.
NOTES = (
    ("kills", "kills"),
    ("joins", "joins"),
    ("leaves", "leaves"),
    ("broker down s", "broker_outage_seconds"),
    ("capacity/s", "capacity_records_per_s"),
    ("offered/s", "offered_records_per_s"),
    ("peak lag", "peak_lag_records"),
    ("backlog drained s", "backlog_drained_s"),
    ("keys", "distinct_keys"),
    ("peak live", "peak_active_sequences"),
    ("RSS ready MB", "rss_at_ready_mb"),
    ("peak RSS MB", "peak_rss_mb"),
    ("drain s", "drain_seconds"),
    ("generated", "generated_records"),
    ("corpus kinds", "corpus_kinds"),
    ("refused exit", "wrong_password_exit"),
    ("refused after s", "wrong_password_refused_after_s"),
    ("down s", "downtime_seconds"),
    ("exit", "exit_code"),
    ("committed past failure", "committed_past_failed_batch"),
    ("tombstoned states", "states_deleted_by_a_tombstone"),
    ("misplaced", "misplaced_records"),
    ("replay disagrees", "replay_disagrees"),
    ("drain failed", "drain_failed"),
    ("worker starts", "worker_starts"),
)


def notes(summary: dict[str, Any]) -> str:
    details = summary.get("details", {})
    shown = [f"{label} {details[key]}" for label, key in NOTES if details.get(key) is not None]
    if summary.get("dlq_reasons"):
        shown.append(f"DLQ reasons {len(summary['dlq_reasons'])}")
    return ", ".join(shown)


def rows(summaries: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(s[key]) for _, key in COLUMNS] + [notes(s)] for s in summaries]


def render(summaries: list[dict[str, Any]], markdown: bool) -> str:
    header = [label for label, _ in COLUMNS] + ["notes"]
    body = rows(summaries)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    out = []
    for row in [header, *body]:
        cells = [
            cell.rjust(w) if i > 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        out.append("  ".join([*cells, row[-1]]))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.report")
    parser.add_argument("folder", nargs="?", default="build/reliability")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    summaries = load(Path(args.folder))
    if not summaries:
        print(f"no scenario summaries in {args.folder}", file=sys.stderr)
        return 1
    print(render(summaries, args.markdown))
    failed = [
        s["scenario"] + "/" + s["guarantee"]
        for s in summaries
        if s["lost"]
        or s["wrong"]
        or s.get("repeats_differing")
        or s.get("details", {}).get("replay_disagrees")
        or s.get("details", {}).get("drain_failed")
        or s["worker_crashes"]
        or s["dlq_missing"]
        or s["dlq_misfiled"]
        or (s["guarantee"] == "exactly-once" and s["duplicated"])
    ]
    if failed:
        print("FAILED: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
