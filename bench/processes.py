"""Child processes the benchmarks start: service workers, the passthrough, the load generator.

Each writes its output to a log file; a worker logs JSON lines, so events such as "running" and
"restored" are read from its log rather than guessed from time. Every process started is stopped
by `stop` (SIGTERM, then SIGKILL) in the caller's `finally`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.memory import rss_bytes

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_LISTEN_FLOOR = 20000


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the broker and the HTTP server do: connections of a previous listener lingering
        # in TIME_WAIT on this port would otherwise make it look taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(span: int = 1) -> int:
    """A port (the first of `span` consecutive ones) free on 127.0.0.1, below the kernel's
    ephemeral range: a port from bind(0) can be taken by any outgoing connection between the
    moment it is picked and the moment the child process listens on it."""
    ceiling = _ephemeral_floor() - span
    rng = random.SystemRandom()
    if ceiling > _LISTEN_FLOOR:
        for _ in range(200):
            port = rng.randrange(_LISTEN_FLOOR, ceiling)
            if all(port_free(port + i) for i in range(span)):
                return port
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + span <= 65536 and all(port_free(port + i) for i in range(1, span)):
            return port
    raise RuntimeError(f"no {span} consecutive free ports on 127.0.0.1")


def wait_for(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Child:
    """A `python -m <module> ...` process with its output in `log_path`."""

    argv: Sequence[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() at start

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                cwd=REPO,
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(self.argv[:3])} exited; log {self.log_path}:\n{tail}")

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@dataclass(frozen=True)
class WorkerCounters:
    batches: float
    batch_records: float
    commits: float
    commit_seconds: float

    def since(self, before: WorkerCounters) -> WorkerCounters:
        return WorkerCounters(
            self.batches - before.batches,
            self.batch_records - before.batch_records,
            self.commits - before.commits,
            self.commit_seconds - before.commit_seconds,
        )

    @property
    def mean_batch_records(self) -> float:
        return self.batch_records / self.batches if self.batches else 0.0

    @property
    def mean_commit_ms(self) -> float:
        return 1000 * self.commit_seconds / self.commits if self.commits else 0.0


@dataclass
class Worker(Child):
    """A service worker (`python -m consumer run`) logging JSON lines, with its HTTP port."""

    port: int = field(default_factory=free_port)

    @classmethod
    def service(cls, args: Sequence[str], log_path: Path) -> Worker:
        port = free_port()
        argv = ["-m", "consumer", "run", *args, "--log-format", "json"]
        argv += ["--metrics-addr", "127.0.0.1", "--metrics-port", str(port)]
        return cls(argv, log_path, port=port)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every log line of one event, parsed."""
        found = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{") and f'"event":"{name}"'.encode() in line:
                found.append(orjson.loads(line))
        return found

    def wait_event(self, name: str, timeout_s: float) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            self.check_alive()
            found = self.events(name)
            return found[-1] if found else None

        return wait_for(probe, timeout_s, f"log event {name!r} in {self.log_path}")

    def http(self, path: str) -> tuple[int, bytes]:
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""  # not listening yet, or too busy to answer in time

    def wait_ready(self, timeout_s: float) -> None:
        def probe() -> bool | None:
            self.check_alive()
            return True if self.http("/readyz")[0] == 200 else None

        wait_for(probe, timeout_s, f"/readyz of {self.log_path.name}")

    def counters(self) -> WorkerCounters:
        """The counters the benchmarks explain their figures with, summed over every series."""
        return WorkerCounters(
            batches=self.metric("lstm_scorer_batch_records_count"),
            batch_records=self.metric("lstm_scorer_batch_records_sum"),
            commits=self.metric("lstm_scorer_commit_seconds_count"),
            commit_seconds=self.metric("lstm_scorer_commit_seconds_sum"),
        )

    def metric(self, name: str) -> float:
        """The sum of every series of one sample name, from /metrics."""
        status, body = self.http("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name:
                    total += sample.value
        return total
