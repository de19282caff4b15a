"""The benchmark result: headline figures derived from the sections, goals, and the JSON files.

The headline keys are the same in every mode; a figure whose section did not run is null.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from bench.e2e import Startup, Throughput
from bench.engine_bench import EngineResults
from bench.failover import FailoverResult
from bench.latency import LatencyPoint
from bench.restore_bench import RestoreResult
from bench.scaling import ScalingPoint

HEADLINE_KEYS = (
    "engine_samples_per_s",
    "engine_speedup_vs_stateful_batch1",
    "engine_speedup_vs_padded_window",
    "bytes_per_sequence",
    "e2e_samples_per_s_alo",
    "e2e_ratio_vs_passthrough_alo",
    "e2e_samples_per_s_eos",
    "e2e_ratio_vs_passthrough_eos",
    "kcat_samples_per_s",
    "e2e_ratio_vs_kcat_alo",
    "e2e_ratio_vs_kcat_eos",
    "quix_samples_per_s_alo",
    "quix_samples_per_s_eos",
    "e2e_ratio_vs_quix_alo",
    "e2e_ratio_vs_quix_eos",
    "p99_ms_at_50pct_alo",
    "p99_ms_at_50pct_eos",
    "p99_ms_at_75pct_alo",
    "restore_keys_per_s",
    "failover_s_alo",
    "failover_s_eos",
)
HEADLINE_KEYS_PER = 100_000  # active keys of the engine headline
HEADLINE_BATCHES = (256, 4096)  # micro-batch sizes it covers (inclusive)


@dataclass(frozen=True)
class Goal:
    bound: float
    direction: Literal["at least", "at most"]

    def met(self, value: float | None) -> bool | None:
        if value is None or math.isnan(value):
            return None
        return value >= self.bound if self.direction == "at least" else value <= self.bound


GOALS: dict[str, Goal] = {
    "engine_samples_per_s": Goal(1_000_000, "at least"),
    "engine_speedup_vs_stateful_batch1": Goal(1_000, "at least"),
    "bytes_per_sequence": Goal(512, "at most"),
    "e2e_ratio_vs_passthrough_alo": Goal(0.8, "at least"),
    "e2e_ratio_vs_passthrough_eos": Goal(0.6, "at least"),
    # The service against kcat piped into kcat, at-least-once, on the same broker (bench.peers).
    "e2e_ratio_vs_kcat_alo": Goal(0.8, "at least"),
    "e2e_ratio_vs_kcat_eos": Goal(0.7, "at least"),
    # The service against a Quix Streams application scoring the same records (bench.peers).
    "e2e_ratio_vs_quix_alo": Goal(10, "at least"),
    "e2e_ratio_vs_quix_eos": Goal(10, "at least"),
    "p99_ms_at_50pct_alo": Goal(50, "at most"),
    "p99_ms_at_50pct_eos": Goal(200, "at most"),
    "p99_ms_at_75pct_alo": Goal(50, "at most"),
    "restore_keys_per_s": Goal(300_000, "at least"),
    # A worker SIGKILLed to the first output of a partition it held, session timeout included.
    "failover_s_alo": Goal(10, "at most"),
    "failover_s_eos": Goal(10, "at most"),
}


@dataclass(frozen=True)
class Sections:
    """What each section measured; None where it did not run."""

    engine: EngineResults | None = None
    startup: Startup | None = None
    throughput: Sequence[Throughput] = ()
    latency: Sequence[LatencyPoint] = ()
    restore: RestoreResult | None = None
    scaling: Sequence[ScalingPoint] = ()
    failover: Sequence[FailoverResult] = ()


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def headline(s: Sections) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(HEADLINE_KEYS)
    if s.engine is not None:
        lo, hi = HEADLINE_BATCHES
        numpy_rates = [
            c.samples_per_s
            for c in s.engine.cases
            if c.approach == "numpy" and c.keys == HEADLINE_KEYS_PER and lo <= c.batch <= hi
        ]
        by_approach = {c.approach: c.samples_per_s for c in s.engine.cases if c.batch == 1}
        engine = min(numpy_rates) if numpy_rates else None
        out["engine_samples_per_s"] = engine
        out["engine_speedup_vs_stateful_batch1"] = _ratio(engine, by_approach.get("keras-stateful"))
        out["engine_speedup_vs_padded_window"] = _ratio(engine, by_approach.get("padded-window"))
        m = s.engine.memory
        out["bytes_per_sequence"] = max(m.nbytes_per_sequence, m.rss_per_sequence)
    rates: dict[tuple[str, str], float] = {
        (t.kind, t.guarantee): t.samples_per_s for t in s.throughput
    }
    kcat = rates.get(("kcat", "at-least-once"))
    out["kcat_samples_per_s"] = kcat
    for suffix, guarantee in (("alo", "at-least-once"), ("eos", "exactly-once")):
        service = rates.get(("service", guarantee))
        out[f"e2e_ratio_vs_kcat_{suffix}"] = _ratio(service, kcat)
        quix = rates.get(("quix", guarantee))
        out[f"quix_samples_per_s_{suffix}"] = quix
        out[f"e2e_ratio_vs_quix_{suffix}"] = _ratio(service, quix)
        out[f"e2e_samples_per_s_{suffix}"] = service
        out[f"e2e_ratio_vs_passthrough_{suffix}"] = _ratio(
            service, rates.get(("passthrough", guarantee))
        )
        out[f"p99_ms_at_50pct_{suffix}"] = _p99_at(s.latency, guarantee, 0.5)
        moved = [f.to_first_output_s for f in s.failover if f.guarantee == guarantee]
        out[f"failover_s_{suffix}"] = moved[0] if moved else None
    out["p99_ms_at_75pct_alo"] = _p99_at(s.latency, "at-least-once", 0.75)
    if s.restore is not None:
        out["restore_keys_per_s"] = s.restore.keys_per_s
    return out


def _p99_at(points: Sequence[LatencyPoint], guarantee: str, load: float) -> float | None:
    at = [p.p99_ms for p in points if p.guarantee == guarantee and p.load_fraction == load]
    return at[0] if at else None


def goals(figures: Mapping[str, float | None]) -> dict[str, dict[str, Any]]:
    return {
        key: {"goal": f"{g.direction} {g.bound:g}", "met": g.met(figures.get(key))}
        for key, g in GOALS.items()
    }


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        # Derived figures (properties) are part of the record too.
        for name in dir(type(value)):
            if isinstance(getattr(type(value), name), property):
                fields[name] = plain(getattr(value, name))
        return fields
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item())
    return value


def document(s: Sections, meta: Mapping[str, Any]) -> dict[str, Any]:
    figures = headline(s)
    return {
        **{k: plain(v) for k, v in figures.items()},
        "goals": goals(figures),
        "meta": dict(meta),
        "engine": plain(s.engine),
        "e2e": {
            "startup": plain(s.startup),
            "throughput": plain(list(s.throughput)),
            "latency": plain(list(s.latency)),
        },
        "restore": plain(s.restore),
        "scaling": plain(list(s.scaling)),
        "failover": plain(list(s.failover)),
    }


def write(doc: Mapping[str, Any], results_dir: Path, stamp: str) -> Path:
    """`<stamp>.json` and `latest.json` in `results_dir`; returns the first."""
    results_dir.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    path = results_dir / f"{stamp}.json"
    path.write_bytes(data)
    (results_dir / "latest.json").write_bytes(data)
    return path
