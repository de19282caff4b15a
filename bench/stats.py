"""Small statistics the benchmarks share: sustained rates and latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# The first and last tenth of a run are start-up and drain, not the sustained rate.
TRIM = 0.1


@dataclass(frozen=True)
class Rate:
    records: int  # records inside the measured window
    seconds: float

    @property
    def per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def sustained_rate(stamps_ms: npt.ArrayLike, trim: float = TRIM) -> Rate:
    """Records per second between the `trim` and `1 - trim` quantiles of their timestamps."""
    stamps = np.sort(np.asarray(stamps_ms, np.float64))
    n = len(stamps)
    if n < 2:
        raise ValueError(f"need at least two timestamps, got {n}")
    lo, hi = int(n * trim), max(int(n * (1 - trim)) - 1, int(n * trim) + 1)
    seconds = (stamps[hi] - stamps[lo]) / 1000
    return Rate(hi - lo, seconds)


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def percentiles(latencies_ms: npt.ArrayLike) -> Percentiles:
    values = np.asarray(latencies_ms, np.float64)
    if not len(values):
        raise ValueError("no latencies")
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return Percentiles(len(values), float(p50), float(p95), float(p99), float(values.max()))
