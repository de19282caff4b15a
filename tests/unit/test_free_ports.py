"""Ports handed to children that listen on them a second or more later."""

from __future__ import annotations

import pytest

from producer_sim.cluster import ports


class Draws:
    """A random source that draws the given ports in order."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def randrange(self, start: int, stop: int) -> int:
        value = self.values.pop(0)
        assert start <= value < stop
        return value


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_handed_out", set())
    monkeypatch.setattr(ports, "_ephemeral_floor", lambda: 32768)
    # Nothing listens on any port yet (children not started, or not bound): whatever else runs
    # on this machine, only what this process handed out may keep a port from being drawn.
    monkeypatch.setattr(ports, "port_free", lambda port: True)


@pytest.mark.usefixtures("fresh")
def test_a_port_still_free_is_not_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two workers started back to back: the first has not bound its port yet when the second
    # asks, and the draw repeats.
    monkeypatch.setattr(ports, "_rng", Draws(24000, 24000, 24007))
    assert ports.free_port() == 24000
    assert ports.free_port() == 24007


@pytest.mark.usefixtures("fresh")
def test_a_span_taken_in_part_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_rng", Draws(24000, 23999, 24100))
    assert ports.free_port(span=2) == 24000
    assert ports.free_port(span=2) == 24100  # 23999's span is 23999 and 24000


@pytest.mark.usefixtures("fresh")
def test_a_preferred_pair_handed_out_before_goes_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_rng", Draws(25000))
    assert ports.free_port_pair(24500) == 24500
    assert ports.free_port_pair(24501) == 25000
