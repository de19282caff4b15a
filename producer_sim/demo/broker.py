"""The demo's broker: the one KAFKA_BOOTSTRAP_SERVERS names, else the local one, started by the
demo if it is not running (and then stopped by the demo, and only then)."""

from __future__ import annotations

from collections.abc import Callable

from producer_sim.cluster.broker import LocalBroker


class BrokerError(RuntimeError):
    pass


class DemoBroker:
    def __init__(self, env: dict[str, str], say: Callable[[str], None]) -> None:
        self._env = env
        self._say = say
        # The developer's broker: the script's run directory, ports and start timeout, or those
        # KAFKA_RUN_DIR, KAFKA_PORT and KAFKA_START_TIMEOUT choose.
        self._local = LocalBroker(start_timeout_s=None)
        self.started = False

    def ensure(self) -> str:
        """The bootstrap address of a running broker."""
        given = self._env.get("KAFKA_BOOTSTRAP_SERVERS")
        if given:
            self._say(f"broker: {given} (KAFKA_BOOTSTRAP_SERVERS)")
            return given
        code, out = self._local.run_shown("status")
        if code == 0:
            address = out.strip().splitlines()[-1]
            self._say(f"broker: {address} (already running; the demo leaves it running)")
            return address
        self._say("broker: starting the local broker (deploy/kafka/local-kafka.sh start)")
        self.started = True  # before the start: a half-done start is still stopped
        code, out = self._local.run_shown("start", finish_on_interrupt=True)
        if code != 0:
            raise BrokerError(f"the local broker did not start (exit {code}); see above")
        address = out.strip().splitlines()[-1]
        self._say(f"broker: {address} (started; stopped at the end)")
        return address

    def stop_if_started(self) -> None:
        if self.started:
            code, _ = self._local.run_shown("stop")
            self._say("broker: stopped" if code == 0 else f"broker: stop failed (exit {code})")
            self.started = False
