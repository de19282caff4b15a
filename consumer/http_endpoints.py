"""Operator endpoints, served from a daemon thread so the poll loop never waits on a scrape.

/metrics  the registry, in the format the scraper asks for (Prometheus text or OpenMetrics)
/healthz  200 while the poll loop has polled within the bound, else 503
/readyz   200 when partitions are assigned and all of them are restored (and the loop is
          live), else 503 with a JSON body saying why
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Partition = tuple[str, int]
_log = logging.getLogger(__name__)
_MAX_LISTED = 10  # partitions named in a /readyz body; the count is always given


@dataclass(frozen=True)
class Liveness:
    live: bool
    seconds_since_poll: float


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    assigned: int
    pending: tuple[Partition, ...]  # assigned but not yet restored


class Health:
    """What the poll loop reports about itself; read by the HTTP threads. Thread-safe.

    A partition counts as restored from `restore_finished` until it is assigned anew. The bound
    starts at construction, which gives start-up the same grace as a poll."""

    def __init__(self, stale_after_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_poll = clock()
        self._assigned: frozenset[Partition] = frozenset()
        self._restored: set[Partition] = set()

    def mark_polled(self) -> None:
        now = self._clock()
        with self._lock:
            self._last_poll = now

    def set_assigned(self, partitions: Iterable[Partition]) -> None:
        """The full current assignment; partitions kept from the previous one stay restored."""
        assigned = frozenset(partitions)
        with self._lock:
            self._assigned = assigned
            self._restored &= assigned

    def restore_started(self, partitions: Iterable[Partition]) -> None:
        with self._lock:
            self._restored.difference_update(partitions)

    def restore_finished(self, partitions: Iterable[Partition]) -> None:
        with self._lock:
            self._restored.update(p for p in partitions if p in self._assigned)

    def liveness(self) -> Liveness:
        now = self._clock()
        with self._lock:
            age = now - self._last_poll
        return Liveness(live=age <= self._stale_after_s, seconds_since_poll=age)

    def readiness(self) -> Readiness:
        live = self.liveness()
        with self._lock:
            assigned = self._assigned
            pending = tuple(sorted(assigned - self._restored))
        if not live.live:
            reason = f"poll loop stale for {live.seconds_since_poll:.1f} s"
        elif not assigned:
            reason = "no partitions assigned"
        elif pending:
            reason = f"restoring {len(pending)} of {len(assigned)} partitions"
        else:
            return Readiness(True, "ready", len(assigned), ())
        return Readiness(False, reason, len(assigned), pending)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: Health


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "lstm-scorer"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        server = cast(_Server, self.server)
        path = urlsplit(self.path).path
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            status, body = 200, encoder(server.registry)
        elif path == "/healthz":
            live = server.health.liveness()
            content_type = "application/json"
            status = 200 if live.live else 503
            body = orjson.dumps(
                {"live": live.live, "seconds_since_poll": round(live.seconds_since_poll, 3)}
            )
        elif path == "/readyz":
            ready = server.health.readiness()
            content_type = "application/json"
            status = 200 if ready.ready else 503
            listed = [f"{topic}[{partition}]" for topic, partition in ready.pending[:_MAX_LISTED]]
            body = orjson.dumps(
                {
                    "ready": ready.ready,
                    "reason": ready.reason,
                    "assigned": ready.assigned,
                    "pending": len(ready.pending),
                    "pending_partitions": listed,
                }
            )
        else:
            status, content_type, body = 404, "text/plain; charset=utf-8", b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Scrapes every few seconds would drown the service's own log at INFO.
        _log.debug("http " + format, *args)


class HttpEndpoints:
    """The server, bound on construction (port 0 picks a free port, see `port`)."""

    def __init__(self, addr: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        server_class = _Server6 if ":" in addr else _Server
        self._server = server_class((addr, port), _Handler)
        self._server.registry = registry
        self._server.health = health
        # A short poll interval bounds how long `stop` waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http-endpoints", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpEndpoints:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket; waits for the serving thread to end."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
