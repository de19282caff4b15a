"""How much each mode measures, and the sections that need a broker, in the order they run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bench import e2e, engine_bench, failover, latency, restore_bench, scaling
from bench.models import save_streaming_model
from bench.service import Cluster, Guarantee

T = TypeVar("T")


class Guard(Protocol):
    """Runs a section and returns its result, or None when it failed (the failure is recorded)."""

    def __call__(self, name: str, section: Callable[[], T]) -> T | None: ...


@dataclass(frozen=True)
class RunPlan:
    sections: tuple[str, ...]  # run when --only is not given
    engine: engine_bench.EnginePlan
    e2e_records: int  # backlog drained by each throughput run
    latency_fractions: tuple[float, ...]  # of the measured maximum
    latency_seconds: float  # per load level
    latency_settle_s: float  # left out at the start of each level
    latency_warmup_s: float  # load before the first level, not measured
    restore_keys: int
    failover_keys: int  # live sequences between the two workers
    failover_guarantees: tuple[Guarantee, ...]
    scaling_records: int
    scaling_workers: tuple[int, ...]


FULL = RunPlan(
    sections=("engine", "e2e", "restore", "failover", "scaling"),
    engine=engine_bench.FULL,
    e2e_records=1_000_000,
    latency_fractions=(0.25, 0.5, 0.75),
    latency_seconds=20.0,
    latency_settle_s=3.0,
    latency_warmup_s=10.0,
    restore_keys=1_000_000,
    failover_keys=1_000_000,
    failover_guarantees=("at-least-once", "exactly-once"),
    scaling_records=600_000,
    scaling_workers=(1, 2, 3),
)
# Every headline figure, on smaller sizes; scaling only when asked for with --only.
QUICK = RunPlan(
    sections=("engine", "e2e", "restore", "failover"),
    engine=engine_bench.QUICK,
    e2e_records=150_000,
    latency_fractions=(0.5,),
    latency_seconds=8.0,
    latency_settle_s=2.0,
    latency_warmup_s=5.0,
    restore_keys=200_000,
    failover_keys=200_000,
    failover_guarantees=("at-least-once",),
    scaling_records=200_000,
    scaling_workers=(1, 2),
)


def default_model(workdir: Path) -> Path:
    return save_streaming_model(workdir / "user-model.keras")


def _latency(
    cluster: Cluster, plan: RunPlan, measured: e2e.Throughput, say: Callable[[str], None]
) -> Callable[[], list[latency.LatencyPoint]]:
    return lambda: latency.run(
        cluster,
        measured.guarantee,
        measured.samples_per_s,
        plan.latency_fractions,
        seconds=plan.latency_seconds,
        settle_s=plan.latency_settle_s,
        warmup_s=plan.latency_warmup_s,
        progress=say,
    )


def _failover(
    cluster: Cluster, plan: RunPlan, guarantee: Guarantee, say: Callable[[str], None]
) -> Callable[[], failover.FailoverResult]:
    return lambda: failover.run(cluster, plan.failover_keys, guarantee, say)


def run_broker_sections(
    cluster: Cluster,
    plan: RunPlan,
    wanted: Sequence[str],
    say: Callable[[str], None],
    guard: Guard,
) -> dict[str, Any]:
    """The broker sections that are wanted; returns `report.Sections` fields by name."""
    found: dict[str, Any] = {}
    if "e2e" in wanted:
        found["startup"] = guard("startup", lambda: e2e.measure_startup(cluster))
        throughput = guard("throughput", lambda: e2e.run(cluster, plan.e2e_records, say)) or []
        found["throughput"] = throughput
        points: list[latency.LatencyPoint] = []
        for t in throughput:
            if t.kind == "service":  # the load levels are fractions of the service's own maximum
                points += guard(f"latency {t.guarantee}", _latency(cluster, plan, t, say)) or []
        found["latency"] = points
    if "restore" in wanted:
        found["restore"] = guard(
            "restore", lambda: restore_bench.run(cluster, plan.restore_keys, say)
        )
    if "failover" in wanted:
        found["failover"] = [
            result
            for g in plan.failover_guarantees
            if (result := guard(f"failover {g}", _failover(cluster, plan, g, say))) is not None
        ]
    if "scaling" in wanted:
        found["scaling"] = (
            guard(
                "scaling",
                lambda: scaling.run(cluster, plan.scaling_records, plan.scaling_workers, say),
            )
            or []
        )
    return found
