"""Starting the Quix Streams peer (`bench.peers.quix_scorer`) from the benchmarks: its virtual
environment (built by `scripts/install-quix-peer.sh`, found or built on first use) and its
process. Its outputs carry the input's timestamps (Quix keeps a record's timestamp), so its output
topic stamps records when the broker appends them (`LogAppendTime`), which is what the rate is
read from."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from producer_sim.cluster import REPO
from producer_sim.cluster.child import Child
from producer_sim.cluster.env import child_env

INSTALL = REPO / "scripts" / "install-quix-peer.sh"
# The output topic's setting that makes the broker stamp each record as it appends it.
OUTPUT_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


class QuixUnavailableError(RuntimeError):
    """Its virtual environment could not be built (no network to PyPI, say)."""


def quix_python() -> Path:
    """The peer environment's python, building the environment if needed (about 15 s)."""
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise QuixUnavailableError(f"{INSTALL.name} failed: {done.stderr.strip()[-1000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class QuixPeer(Child):
    """The peer's process: `python -m bench.peers.quix_scorer ...` with the peer's python and
    this repository on its path (for the model step)."""

    python: Path = Path("python3")

    def command(self) -> list[str]:
        return [str(self.python), *self.argv]


def quix_peer(
    python: Path,
    *,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    group: str,
    guarantee: str,
    commit_interval_ms: int,
    model: Path,
    workdir: Path,
) -> QuixPeer:
    argv = [
        "-m", "bench.peers.quix_scorer", "--bootstrap", bootstrap, "--input", input_topic,
        "--output", output_topic, "--group", group, "--guarantee", guarantee,
        "--commit-interval-ms", str(commit_interval_ms), "--model", str(model),
        "--state-dir", str(workdir / f"{group}-quix-state"),
    ]  # fmt: skip
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = child_env({"PYTHONPATH": path})
    return QuixPeer(argv, workdir / f"{group}-quix.log", env=env, python=python)
