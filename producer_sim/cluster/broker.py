"""A broker of deploy/kafka/local-kafka.sh: started, stopped, restarted and asked for its status.

The tests and the benchmarks run brokers of their own, on free ports in run directories of their
own; the demo runs the developer's broker, with the script's defaults (see docs/local-broker.md).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from producer_sim.cluster import REPO, processes
from producer_sim.cluster.ports import free_port_pair

BROKER_SCRIPT = REPO / "deploy" / "kafka" / "local-kafka.sh"


@dataclass(frozen=True)
class LocalBroker:
    """One broker of the script. Each setting is handed to the script as its variable
    (KAFKA_RUN_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_START_TIMEOUT); None leaves the
    variable as this process's environment has it: the script's default or the developer's."""

    run_dir: Path | None = None
    port: int | None = None
    controller_port: int | None = None
    start_timeout_s: int | None = 90

    @property
    def bootstrap(self) -> str:
        assert self.port is not None, "a broker on the script's default port: ask `status`"
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        settings = {
            "KAFKA_RUN_DIR": self.run_dir,
            "KAFKA_PORT": self.port,
            "KAFKA_CONTROLLER_PORT": self.controller_port,
            "KAFKA_START_TIMEOUT": self.start_timeout_s,
        }
        env = dict(os.environ)
        env.update({name: str(value) for name, value in settings.items() if value is not None})
        return env

    def _argv(self, command: str) -> list[str]:
        return ["bash", str(BROKER_SCRIPT), command]

    def _run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._argv(command), env=self._env(), capture_output=True, text=True, check=False
        )

    def _checked(self, command: str) -> str:
        done = self._run(command)
        if done.returncode != 0:
            raise RuntimeError(
                f"local-kafka.sh {command} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def start(self) -> str:
        """Starts it (or finds it running) and returns its bootstrap address."""
        self._checked("start")
        return self.bootstrap

    def stop(self) -> None:
        self._checked("stop")

    def restart(self) -> None:
        """Stop and start again on the same data, like a broker bounce."""
        self._checked("restart")

    def is_running(self) -> bool:
        return self._run("status").returncode == 0

    def run_shown(self, command: str, finish_on_interrupt: bool = False) -> tuple[int, str]:
        """The script's exit code and standard output, its progress and errors (standard error)
        shown as they come, in a session of its own (see `processes.run` for the interrupt)."""
        return processes.run(
            self._argv(command),
            env=self._env(),
            cwd=REPO,
            capture=True,
            finish_on_interrupt=finish_on_interrupt,
        )


B = TypeVar("B", bound=LocalBroker)


def started_on_free_ports(new: Callable[[int], B], preferred: int, attempts: int = 3) -> B:
    """`new(port)` started on `preferred` (and the next port) or another free pair. Two test
    sessions that start at the same moment can pick the same free pair; `local-kafka.sh` then
    refuses the loser ("a port race"), which tries again on other ports."""
    port: int | None = preferred
    for attempt in range(attempts):
        broker = new(free_port_pair(port))
        try:
            broker.start()
            return broker
        except RuntimeError as exc:
            broker.stop()
            if "port race" not in str(exc) or attempt == attempts - 1:
                raise
        port = None
    raise AssertionError("unreachable")
