"""The demo's broker: the one KAFKA_BOOTSTRAP_SERVERS names, else the local one, started by the
demo if it is not running (and then stopped by the demo, and only then)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from producer_sim import processes

REPO = Path(__file__).resolve().parents[1]
BROKER_SCRIPT = REPO / "deploy" / "kafka" / "local-kafka.sh"


class BrokerError(RuntimeError):
    pass


class DemoBroker:
    def __init__(self, env: dict[str, str], say: Callable[[str], None]) -> None:
        self._env = env
        self._say = say
        self.started = False

    def _script(self, command: str, finish_on_interrupt: bool = False) -> tuple[int, str]:
        return processes.run(
            ["bash", str(BROKER_SCRIPT), command],
            env=self._env,
            cwd=REPO,
            capture=True,
            finish_on_interrupt=finish_on_interrupt,
        )

    def ensure(self) -> str:
        """The bootstrap address of a running broker."""
        given = self._env.get("KAFKA_BOOTSTRAP_SERVERS")
        if given:
            self._say(f"broker: {given} (KAFKA_BOOTSTRAP_SERVERS)")
            return given
        code, out = self._script("status")
        if code == 0:
            address = out.strip().splitlines()[-1]
            self._say(f"broker: {address} (already running; the demo leaves it running)")
            return address
        self._say("broker: starting the local broker (deploy/kafka/local-kafka.sh start)")
        self.started = True  # before the start: a half-done start is still stopped
        code, out = self._script("start", finish_on_interrupt=True)
        if code != 0:
            raise BrokerError(f"the local broker did not start (exit {code}); see above")
        address = out.strip().splitlines()[-1]
        self._say(f"broker: {address} (started; stopped at the end)")
        return address

    def stop_if_started(self) -> None:
        if self.started:
            code, _ = self._script("stop")
            self._say("broker: stopped" if code == 0 else f"broker: stop failed (exit {code})")
            self.started = False
