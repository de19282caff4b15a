"""A service worker process (`python -m consumer run`) with its HTTP port: ready, metrics and the
events of its JSON log."""

from __future__ import annotations

import contextlib
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Self

import orjson
from prometheus_client.parser import text_string_to_metric_families

from producer_sim.cluster.child import Child
from producer_sim.cluster.ports import free_port
from producer_sim.cluster.processes import wait_for


@dataclass
class Worker(Child):
    """`python -m <module> run <argv> --metrics-port <port>`: `argv` are the `run` command's
    flags (--metrics-addr among them where wanted), `module` is `consumer` or a wrapper standing
    in for it (a fault-injecting one in the tests, the TensorFlow loader in the benchmarks)."""

    port: int = 0  # 0: a free port, picked at start
    module: str = "consumer"

    def command(self) -> list[str]:
        run = [sys.executable, "-m", self.module, "run", *self.argv]
        return [*run, "--metrics-port", str(self.port)]

    def start(self) -> Self:
        if not self.port:
            self.port = free_port()
        return super().start()

    def http(self, path: str) -> tuple[int, bytes]:
        """The status and body of a GET; (0, b"") when nothing answers in 5 s."""
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""  # not listening yet, or too busy to answer in time

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Until /readyz answers 200; RuntimeError if the worker exits first. Not ready in time:
        its stacks are asked for (SIGUSR1, into its log), then TimeoutError."""

        def probe() -> bool | None:
            self.check_alive()
            return True if self.http("/readyz")[0] == 200 else None

        try:
            wait_for(probe, timeout_s, f"/readyz of {self.log_path.name}")
        except TimeoutError as exc:
            if self.alive():
                assert self.proc is not None
                size = self.log_path.stat().st_size
                self.proc.send_signal(signal.SIGUSR1)  # its stacks go to the log, for the report
                with contextlib.suppress(TimeoutError):
                    grown = lambda: self.log_path.stat().st_size > size or None  # noqa: E731
                    wait_for(grown, 5, "the worker's stack dump")
            message = f"worker not ready after {timeout_s} s; see {self.log_path}"
            raise TimeoutError(message) from exc

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

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every line of one event in its log (with `--log-format json`), parsed."""
        found = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{") and f'"event":"{name}"'.encode() in line:
                found.append(orjson.loads(line))
        return found

    def wait_event(self, name: str, timeout_s: float) -> dict[str, Any]:
        """The latest line of one event, once there is one; RuntimeError if the worker exits."""

        def probe() -> dict[str, Any] | None:
            self.check_alive()
            found = self.events(name)
            return found[-1] if found else None

        return wait_for(probe, timeout_s, f"log event {name!r} in {self.log_path}")
