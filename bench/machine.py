"""What the numbers were measured on: hardware, software versions, the code, and the load."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from consumer.engine import compiled_loops
from consumer.model import compiled_cells

REPO = Path(__file__).resolve().parents[1]
_PACKAGES = ("numpy", "tensorflow", "keras", "confluent-kafka", "orjson")
# Thread-pool settings change what numpy (and so the engine) does with two cores.
_THREAD_ENV = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.strip()


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    try:
        import confluent_kafka  # noqa: PLC0415  (only for its librdkafka version)

        found["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return found


def describe_machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "versions": _versions(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        # Uncommitted changes to the measured code make the commit alone not say what ran.
        "consumer_changed": bool(_git("status", "--porcelain", "consumer")),
        # Without the C extensions the engine runs on numpy alone, about half as fast.
        "compiled_loops": compiled_loops.BUILT,
        "compiled_cells": compiled_cells.BUILT,
        "load_average": list(os.getloadavg()),
        "thread_env": {name: os.environ.get(name) for name in _THREAD_ENV},
    }
