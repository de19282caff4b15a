"""Free ports on 127.0.0.1 for the brokers and workers a run starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports handed out are at least this, away from the well-known and registered services below.
_LISTEN_FLOOR = 20000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_free(port: int) -> bool:
    """Whether a listener could bind `port` on 127.0.0.1 now."""
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


def free_port_pair(preferred: int | None = None) -> int:
    """A broker's port, whose successor (the controller's) is free too: `preferred` if it and
    the next port are free, else (or when None) another free pair."""
    if preferred is not None and port_free(preferred) and port_free(preferred + 1):
        return preferred
    return free_port(span=2)
