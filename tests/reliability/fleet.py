"""Worker processes of one scenario: started, killed, terminated and restarted by slot name, with
every exit accounted for. A crash is an exit nobody asked for, or a non-zero exit after SIGTERM.

A slot keeps its name across restarts (`--instance-id`), as a deployment with stable worker names
does: in exactly-once mode the restarted worker's transactional id fences its killed predecessor
at once instead of leaving its transaction open until the transaction timeout.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson

from producer_sim.cluster.env import TF_DEFAULTS, child_env
from producer_sim.cluster.processes import wait_for
from producer_sim.cluster.worker import Worker
from tests.service_harness import FAST_FAILOVER

Fate = Literal["running", "killed", "terminated"]


@dataclass
class Launch:
    slot: str
    worker: Worker
    fate: Fate = "running"
    exit_code: int | None = None


@dataclass
class Fleet:
    args: list[str]  # the `run` flags shared by every worker, without --instance-id
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    launches: list[Launch] = field(default_factory=list)

    def start(
        self, slot: str, *extra: str, module: str = "consumer", env: dict[str, str] | None = None
    ) -> Worker:
        """`module`: what runs as `python -m <module> run` (a fault-injecting wrapper in tests);
        `env`: added to this worker's environment."""
        full_env = child_env(
            {
                **TF_DEFAULTS,
                # A stuck worker can be asked for every thread's stack with SIGABRT.
                "PYTHONFAULTHANDLER": "1",
                **FAST_FAILOVER,
                **self.env,
                **(env or {}),
            }
        )
        args = [*self.args, "--instance-id", slot, *extra]
        worker = Worker(args, self.workdir / f"{slot}.log", full_env, module=module).start()
        self.launches.append(Launch(slot, worker))
        return worker

    def running(self) -> list[Launch]:
        return [launch for launch in self.launches if launch.fate == "running"]

    def alive(self) -> list[Launch]:
        return [launch for launch in self.running() if launch.worker.alive()]

    def ready(self) -> list[Launch]:
        return [launch for launch in self.alive() if launch.worker.http("/readyz")[0] == 200]

    def wait_ready(self, count: int, timeout_s: float = 180.0) -> list[Launch]:
        """Wait until `count` workers serve; on time-out, say what each worker was doing."""
        try:
            return wait_for(
                lambda: ((ready := self.ready()) and len(ready) >= count and ready) or None,
                timeout_s,
                f"{count} ready workers",
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.state_report()}") from None

    def state_report(self) -> str:
        """Each launch's fate, exit code, /readyz answer and log tail: what a time-out needs."""
        lines = []
        for launch in self.launches:
            code = launch.worker.proc.poll() if launch.worker.proc is not None else None
            status, body = launch.worker.http("/readyz") if code is None else (0, b"")
            tail = launch.worker.log_path.read_bytes()[-6000:].decode(errors="replace")
            lines.append(
                f"--- {launch.slot}: {launch.fate}, exit {code}, /readyz {status} "
                f"{body.decode(errors='replace')}\n{tail}"
            )
        return "\n".join(lines)

    def kill(self, launch: Launch) -> None:
        launch.fate = "killed"
        launch.worker.kill()

    def terminate(self, launch: Launch, timeout_s: float = 90.0) -> int:
        launch.fate = "terminated"
        try:
            launch.exit_code = launch.worker.terminate(timeout_s)
        except subprocess.TimeoutExpired:
            # Where it is stuck: every thread's stack goes to its log (SIGUSR1, faulthandler).
            proc = launch.worker.proc
            assert proc is not None
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2.0)
            raise TimeoutError(
                f"{launch.slot} did not stop within {timeout_s:g} s of SIGTERM\n"
                + self.state_report()
            ) from None
        return launch.exit_code

    def crashes(self) -> list[Launch]:
        """Workers that exited on their own, or badly when asked to stop."""
        out: list[Launch] = []
        for launch in self.launches:
            proc = launch.worker.proc
            assert proc is not None
            code = proc.poll()
            if launch.fate == "running" and code is not None:
                launch.exit_code = code
                out.append(launch)
            elif launch.fate == "terminated" and launch.exit_code != 0:
                out.append(launch)
        return out

    def stop_all(self, timeout_s: float = 180.0) -> None:
        """SIGTERM every running worker once it serves (a clean stop is part of every scenario;
        a worker still loading its model has no handler installed yet)."""
        wait_for(
            lambda: all(launch.worker.http("/readyz")[0] == 200 for launch in self.alive()) or None,
            timeout_s,
            "every running worker to serve before stopping it",
        )
        for launch in self.alive():
            self.terminate(launch)

    def cleanup(self) -> None:
        for launch in self.launches:
            if launch.worker.alive():
                launch.worker.kill()

    def timeline(self, limit: int = 200) -> list[str]:
        """Every launch's rebalances, restores, rewinds and failed commits, in time order: what a
        scenario that lost or mis-scored outputs needs to say which worker held which partition
        and what it restored (the logs go with the test's directory)."""
        lines: list[tuple[str, str]] = []
        for n, launch in enumerate(self.launches):
            for raw in launch.worker.log_path.read_bytes().splitlines():
                if not raw.startswith(b"{"):
                    continue
                try:
                    event = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if event.get("event") in TIMELINE_EVENTS:
                    ts = str(event.pop("ts", ""))
                    for noise in ("level", "logger", "settings"):
                        event.pop(noise, None)
                    said = orjson.dumps(event).decode()
                    lines.append((ts, f"{ts[11:23]} {launch.slot}#{n} {said}"))
        return [line for _, line in sorted(lines)][:limit]

    def crash_report(self) -> str:
        lines = []
        for launch in self.crashes():
            tail = launch.worker.log_path.read_bytes()[-3000:].decode(errors="replace")
            lines.append(f"{launch.slot} ({launch.fate}, exit {launch.exit_code}):\n{tail}")
        return "\n".join(lines)


TIMELINE_EVENTS = frozenset(
    {"starting", "running", "assign", "revoke", "lost", "partitions_dropped", "restored",
     "rewound", "rejoined", "commit_failed", "producer_replaced", "shutdown",
     "shutdown_without_commit", "idle_evicted", "restored_sequences_ended"}
)  # fmt: skip


def memory_kb(pid: int, field_name: str = "VmHWM") -> int:
    """A figure from /proc/<pid>/status in kB (VmHWM: peak resident set; VmRSS: current)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)
