"""Free ports on 127.0.0.1 for the brokers and workers a run starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Ports handed out are at least this, away from the well-known and registered services below.
_LISTEN_FLOOR = 20000

_rng = random.SystemRandom()
# Every port this process handed out: a child given one takes a second or more to listen on it,
# and a port still free then must not go to the next child started meanwhile.
_handed_out: set[int] = set()


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


def _available(port: int, span: int) -> bool:
    return all(p not in _handed_out and port_free(p) for p in range(port, port + span))


def _hand_out(port: int, span: int) -> int:
    _handed_out.update(range(port, port + span))
    return port


def free_port(span: int = 1) -> int:
    """A port (the first of `span` consecutive ones) free on 127.0.0.1 and not handed out
    before by this process, below the kernel's ephemeral range: a port from bind(0) can be taken
    by any outgoing connection between the moment it is picked and the moment the child process
    listens on it."""
    ceiling = _ephemeral_floor() - span
    if ceiling > _LISTEN_FLOOR:
        for _ in range(200):
            port = _rng.randrange(_LISTEN_FLOOR, ceiling)
            if _available(port, span):
                return _hand_out(port, span)
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + span <= 65536 and _available(port, span):
            return _hand_out(port, span)
    raise RuntimeError(f"no {span} consecutive free ports on 127.0.0.1")


def free_port_pair(preferred: int | None = None) -> int:
    """A broker's port, whose successor (the controller's) is free too: `preferred` if it and
    the next port are free and not handed out before, else (or when None) another free pair."""
    if preferred is not None and _available(preferred, 2):
        return _hand_out(preferred, 2)
    return free_port(span=2)
