"""A Python child process with its output in a log file: the benchmarks' passthrough and load
generator, and (as `worker.Worker`) the service's workers of the demo, the benchmarks and the
tests. Whoever starts one stops it (`stop`, `terminate` or `kill`) in a `finally`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from producer_sim.cluster import REPO, processes
from producer_sim.cluster.env import child_env


@dataclass
class Child:
    """`python <argv>` (`-m <module> ...`), both output streams appended to `log_path`."""

    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None  # None: child_env() at start
    cwd: Path = REPO
    own_session: bool = False  # the demo's children: see `processes`
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() at start

    def command(self) -> list[str]:
        return [sys.executable, *self.argv]

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = child_env() if self.env is None else self.env
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = processes.start(
                self.command(), env=env, cwd=self.cwd, log=log, own_session=self.own_session
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        """Its exit code once it has exited; None while it runs (or before it starts)."""
        return None if self.proc is None else self.proc.poll()

    def check_alive(self) -> None:
        """RuntimeError with the end of its log if it has exited."""
        if not self.alive():
            tail = self.log_path.read_text(errors="replace")[-3000:]
            what = " ".join(self.command()[1:4])
            raise RuntimeError(f"{what} exited; log {self.log_path}:\n{tail}")

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit code (None if never started)."""
        if self.proc is None:
            return None
        return processes.stop([self.proc], timeout_s)[0]

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and its exit code; subprocess.TimeoutExpired if it has not exited within
        `timeout_s` (for tests, where not stopping when asked is a failure)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, as the tests inject them."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
