"""How big each reliability scenario is: quick (the default, part of `pytest tests` and CI) or
full (`make reliability`, RELIABILITY_MODE=full). One frozen record per mode, so a scenario reads
its sizes from one place and the summary can say which mode produced it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Mode = Literal["quick", "full"]
MODES: tuple[Mode, ...] = ("quick", "full")


@dataclass(frozen=True)
class Profile:
    mode: Mode
    # 1. hard kills: three workers, SIGKILL at random moments
    kill_sequences: int
    kill_max_len: int  # sequence lengths are uniform in 1..max_len
    kill_min_samples: int
    kills: int  # per guarantee
    kill_gap_s: tuple[float, float]  # pause between two kills, uniform
    # 2. broker restart
    restart_sequences: int
    restart_down_s: float  # how long the broker stays down
    # 3. rebalance storm: joins plus leaves
    storm_sequences: int
    storm_events: int
    storm_gap_s: tuple[float, float]
    # 4. bad input
    generated_bad: int  # hypothesis-generated values
    bad_good_sequences: int  # good sequences interleaved with them
    # 5. overload: the simulator at twice a worker's capacity
    overload_seconds: float
    overload_calibration_records: int
    # 6. sequences that never end
    idle_keys: int
    idle_timeout_s: float
    # 8.-12. the state-loss scenarios: how many keys (sequences) each runs with
    downtime_keys: int  # 8. downtime longer than the idle timeout
    crash_sequences: int  # 9. an exception inside the loop
    handover_keys: int  # 10. revoke with pending tombstones
    max_steps_keys: int  # 11. --max-steps changed across a restart
    wrong_partition_keys: int  # 12. records of a key on another partition
    # 13.-16. three brokers, mutual TLS and ACLs
    cluster_sequences: int  # sequences fed while brokers fail
    cluster_down_s: float  # how long a killed broker stays down
    cluster_feed_s: float  # how long the load runs


QUICK = Profile(
    mode="quick",
    kill_sequences=2_000,
    kill_max_len=20,
    kill_min_samples=20_000,
    kills=4,
    kill_gap_s=(2.0, 5.0),
    restart_sequences=2_000,
    restart_down_s=5.0,
    storm_sequences=2_000,
    storm_events=8,
    storm_gap_s=(1.0, 3.0),
    generated_bad=10_000,
    bad_good_sequences=300,
    overload_seconds=8.0,
    overload_calibration_records=30_000,
    idle_keys=100_000,
    idle_timeout_s=2.0,
    downtime_keys=15_000,
    crash_sequences=1_000,
    handover_keys=1_000,
    max_steps_keys=1_000,
    wrong_partition_keys=1_000,
    cluster_sequences=1_500,
    cluster_down_s=4.0,
    cluster_feed_s=30.0,
)

FULL = Profile(
    mode="full",
    kill_sequences=5_000,
    kill_max_len=38,
    kill_min_samples=100_000,
    kills=12,
    kill_gap_s=(2.0, 6.0),
    restart_sequences=5_000,
    restart_down_s=15.0,
    storm_sequences=6_000,
    storm_events=24,
    storm_gap_s=(1.0, 4.0),
    generated_bad=20_000,
    bad_good_sequences=1_000,
    overload_seconds=60.0,
    overload_calibration_records=100_000,
    idle_keys=1_000_000,
    idle_timeout_s=5.0,
    downtime_keys=30_000,
    crash_sequences=5_000,
    handover_keys=10_000,
    max_steps_keys=10_000,
    wrong_partition_keys=10_000,
    cluster_sequences=5_000,
    cluster_down_s=12.0,
    cluster_feed_s=90.0,
)


def current_profile() -> Profile:
    raw = os.environ.get("RELIABILITY_MODE", "quick").strip().lower() or "quick"
    if raw not in MODES:
        raise ValueError(f"RELIABILITY_MODE must be one of {', '.join(MODES)}, not {raw!r}")
    return FULL if raw == "full" else QUICK
