"""The operator endpoints, on an ephemeral port, with an injected clock."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from consumer.http_endpoints import Health, HttpEndpoints


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(stale_after_s=30.0, clock=clock)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("lstm_scorer_probe", "A probe metric.", registry=registry).inc(3)
    return registry


@pytest.fixture
def server(registry: CollectorRegistry, health: Health) -> Iterator[HttpEndpoints]:
    endpoints = HttpEndpoints("127.0.0.1", 0, registry, health).start()
    yield endpoints
    endpoints.stop()


def get(server: HttpEndpoints, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_ephemeral_port_is_exposed(server: HttpEndpoints) -> None:
    assert server.port > 0


def test_metrics(server: HttpEndpoints) -> None:
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["lstm_scorer_probe"].samples[0].value == 3.0


def test_metrics_head_and_query_string(server: HttpEndpoints) -> None:
    status, _, body = get(server, "/metrics", method="HEAD")
    assert (status, body) == (200, b"")
    assert get(server, "/metrics?x=1")[0] == 200


def test_healthz_goes_stale_without_polls(
    server: HttpEndpoints, health: Health, clock: Clock
) -> None:
    status, content_type, body = get(server, "/healthz")
    assert (status, content_type) == (200, "application/json")
    assert orjson.loads(body)["live"] is True
    clock.now += 29.0
    assert get(server, "/healthz")[0] == 200
    clock.now += 2.0  # 31 s since the last poll
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert orjson.loads(body) == {"live": False, "seconds_since_poll": 31.0}
    health.mark_polled()
    assert get(server, "/healthz")[0] == 200


def test_readyz_transitions(server: HttpEndpoints, health: Health) -> None:
    def ready() -> tuple[int, dict[str, object]]:
        status, _, body = get(server, "/readyz")
        return status, orjson.loads(body)

    status, body = ready()
    assert (status, body["reason"]) == (503, "no partitions assigned")

    partitions = [("samples", 0), ("samples", 1)]
    health.set_assigned(partitions)
    status, body = ready()
    assert (status, body["pending"]) == (503, 2)  # assigned, restore not begun

    health.restore_started(partitions)
    health.restore_finished([("samples", 1)])
    status, body = ready()
    assert status == 503
    assert body["reason"] == "restoring 1 of 2 partitions"
    assert body["pending_partitions"] == ["samples[0]"]

    health.restore_finished([("samples", 0)])
    status, body = ready()
    assert status == 200
    assert body == {
        "ready": True,
        "reason": "ready",
        "assigned": 2,
        "pending": 0,
        "pending_partitions": [],
    }

    # A rebalance: partition 1 kept (still restored), partition 2 new (not yet restored).
    health.set_assigned([("samples", 1), ("samples", 2)])
    status, body = ready()
    assert (status, body["pending_partitions"]) == (503, ["samples[2]"])
    health.restore_finished([("samples", 2), ("samples", 0)])  # 0 is no longer assigned
    assert ready() == (
        200,
        {**body, "ready": True, "reason": "ready", "pending": 0, "pending_partitions": []},
    )

    health.set_assigned([])
    assert ready()[1]["reason"] == "no partitions assigned"


def test_readyz_fails_when_the_loop_is_stale(
    server: HttpEndpoints, health: Health, clock: Clock
) -> None:
    health.set_assigned([("samples", 0)])
    health.restore_finished([("samples", 0)])
    assert get(server, "/readyz")[0] == 200
    clock.now += 60.0
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert str(orjson.loads(body)["reason"]).startswith("poll loop stale")


def test_unknown_path_is_404(server: HttpEndpoints) -> None:
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404


def test_stop_releases_the_port(registry: CollectorRegistry, health: Health) -> None:
    endpoints = HttpEndpoints("127.0.0.1", 0, registry, health).start()
    port = endpoints.port
    endpoints.stop()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()
    # Stopping a server that never started does not hang.
    HttpEndpoints("127.0.0.1", 0, registry, health).stop()
