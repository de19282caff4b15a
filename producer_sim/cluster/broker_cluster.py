"""A cluster of deploy/kafka/local-kafka-cluster.sh: several KRaft nodes on loopback, started and
stopped together, and each one stopped, SIGKILLed and started again on its own (leader
failovers). Optionally with a mutual-TLS listener and the standard authorizer (ACLs)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from producer_sim.cluster import REPO

CLUSTER_SCRIPT = REPO / "deploy" / "kafka" / "local-kafka-cluster.sh"
PORTS_PER_NODE = 4  # plaintext, controller, TLS, one spare: node n's block starts at 4(n - 1)


@dataclass(frozen=True)
class LocalCluster:
    """`brokers` nodes in `cluster_dir` (node n in node-n), node n's plaintext listener on
    `port` + 4(n - 1), its controller on the next port and its TLS listener (`tls`) on the one
    after."""

    cluster_dir: Path
    port: int
    brokers: int = 3
    tls: bool = False
    acls: bool = False
    start_timeout_s: int = 120

    def node_port(self, node: int) -> int:
        return self.port + PORTS_PER_NODE * (node - 1)

    @property
    def nodes(self) -> range:
        return range(1, self.brokers + 1)

    @property
    def bootstrap(self) -> str:
        """The plaintext listeners: the operator's (a super user when ACLs are on)."""
        return ",".join(f"127.0.0.1:{self.node_port(n)}" for n in self.nodes)

    @property
    def tls_bootstrap(self) -> str:
        assert self.tls, "a cluster without its TLS listener"
        return ",".join(f"127.0.0.1:{self.node_port(n) + 2}" for n in self.nodes)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_CLUSTER_DIR=str(self.cluster_dir),
            KAFKA_PORT=str(self.port),
            KAFKA_BROKERS=str(self.brokers),
            KAFKA_TLS="1" if self.tls else "0",
            KAFKA_ACLS="1" if self.acls else "0",
            KAFKA_START_TIMEOUT=str(self.start_timeout_s),
        )
        return env

    def _checked(self, *args: str) -> str:
        done = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"local-kafka-cluster.sh {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def start(self) -> str:
        self._checked("start")
        return self.bootstrap

    def stop(self) -> None:
        self._checked("stop")

    def start_node(self, node: int) -> None:
        self._checked("start-node", str(node))

    def stop_node(self, node: int) -> None:
        """A clean shutdown: the node hands its leaderships over first."""
        self._checked("stop-node", str(node))

    def kill_node(self, node: int) -> None:
        """SIGKILL: its leaderships move only when the controller notices it is gone."""
        self._checked("kill-node", str(node))

    def client_cert(self, name: str) -> Path:
        """The folder holding `name`.key, `name`.crt and ca.pem, for the principal User:`name`."""
        return Path(self._checked("client-cert", name).strip().splitlines()[-1])
