"""The printed summary of a result document (the JSON written by `bench.report`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.report import HEADLINE_KEYS


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True))

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def headline_lines(doc: dict[str, Any]) -> list[str]:
    rows = []
    for key in HEADLINE_KEYS:
        value = doc.get(key)
        goal = doc["goals"].get(key)
        met = "" if goal is None else {True: "met", False: "MISSED", None: "-"}[goal["met"]]
        digits = 2 if key.startswith(("e2e_ratio", "p99")) else 0
        rows.append([key, _num(value, digits), goal["goal"] if goal else "", met])
    return _grid(["figure", "value", "goal", ""], rows)


def engine_lines(engine: dict[str, Any] | None) -> list[str]:
    if not engine:
        return []
    rows = [
        [
            c["approach"],
            _num(c["keys"]),
            _num(c["batch"]),
            _num(c["samples_per_s"]),
            _num(c["samples_per_cpu_s"]),
            _num(c["samples"]),
        ]
        for c in engine["cases"]
    ]
    m = engine["memory"]
    lines = _grid(["engine", "keys", "batch", "samples/s", "per CPU s", "samples"], rows)
    lines.append(
        f"memory at {m['keys']:,} keys: StateTable.nbytes {m['nbytes_per_sequence']:.0f} B, "
        f"RSS delta {m['rss_per_sequence']:.0f} B per sequence"
    )
    return lines


def e2e_lines(e2e: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if e2e.get("startup"):
        s = e2e["startup"]
        lines.append(
            f"worker start-up: running after {s['seconds_to_running']:.1f} s, ready after "
            f"{s['seconds_to_ready']:.1f} s, {s['rss_bytes'] / 2**20:.0f} MiB resident"
        )
    if e2e.get("throughput"):
        rows = [
            [
                t["kind"],
                t["guarantee"],
                _num(t["commit_interval_ms"]),
                _num(t["samples_per_s"]),
                _num(t.get("mean_batch_records")),
                _num(t.get("mean_commit_ms")),
            ]
            for t in e2e["throughput"]
        ]
        header = ["process", "guarantee", "interval ms", "records/s", "batch", "commit ms"]
        lines += _grid(header, rows)
        staged = [t for t in e2e["throughput"] if t.get("stage_us")]
        if staged:
            stages = list(staged[0]["stage_us"])
            rows = [
                [stage, *(_num(t["stage_us"].get(stage), 2) for t in staged)] for stage in stages
            ]
            rows.append(["total", *(_num(sum(t["stage_us"].values()), 2) for t in staged)])
            lines += _grid(["µs per record", *(t["guarantee"] for t in staged)], rows)
    if e2e.get("latency"):
        rows = [
            [
                p["guarantee"],
                f"{p['load_fraction']:.0%}",
                _num(p["target_rate"]),
                _num(p["live_capacity"]),
                f"{p['target_rate'] / p['drain_rate']:.0%}" if p["drain_rate"] else "-",
                _num(p["p50_ms"], 1),
                _num(p["p95_ms"], 1),
                _num(p["p99_ms"], 1),
                _num(p["produced_p99_ms"], 1),
                _num(p["mean_batch_records"]),
                _num(p["mean_commit_ms"]),
                f"{p['received']:,}/{p['sent']:,}",
            ]
            for p in e2e["latency"]
        ]
        header = ["guarantee", "load", "rate/s", "of live", "of drain"]
        header += ["p50 ms", "p95 ms", "p99 ms", "p99 produced", "batch", "commit ms", "out/in"]
        lines += _grid(header, rows)
    return lines


def restore_lines(restore: dict[str, Any] | None) -> list[str]:
    if not restore:
        return []
    return [
        f"restore: {restore['keys']:,} keys ({restore['record_bytes']} B each) in "
        f"{restore['seconds']:.2f} s = {restore['keys_per_s']:,.0f} keys/s; worker then "
        f"{restore['rss_bytes'] / 2**20:.0f} MiB resident"
    ]


def failover_lines(failover: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"failover ({f['guarantee']}, {f['keys']:,} keys, session timeout "
        f"{f['session_timeout_ms'] / 1000:g} s): first output of a moved partition "
        f"{f['to_first_output_s']:.2f} s after the SIGKILL (read {f['to_first_read_s']:.2f} s); "
        f"rebalance at {f['to_rebalance_s']:.2f} s, restore of {f['restored_records']:,} "
        f"records {f['restore_s']:.2f} s"
        for f in failover
    ]


def scaling_lines(scaling: Sequence[dict[str, Any]]) -> list[str]:
    if not scaling:
        return []
    rows = [[_num(p["workers"]), _num(p["samples_per_s"]), f"{p['seconds']:.1f}"] for p in scaling]
    return _grid(["workers", "records/s", "window s"], rows)


def render(doc: dict[str, Any]) -> str:
    blocks = [
        headline_lines(doc),
        engine_lines(doc.get("engine")),
        e2e_lines(doc.get("e2e") or {}),
        restore_lines(doc.get("restore")),
        failover_lines(doc.get("failover") or []),
        scaling_lines(doc.get("scaling") or []),
    ]
    return "\n\n".join("\n".join(b) for b in blocks if b)
