"""The token bucket, on a clock the test moves."""

from __future__ import annotations

import pytest

from producer_sim.simulator.rate import TokenBucket


def test_gives_rate_tokens_per_second_and_nothing_in_advance() -> None:
    bucket = TokenBucket(rate=100.0, capacity=50.0, now=0.0)
    assert bucket.take(10, now=0.0) == 0
    assert bucket.seconds_until_next(now=0.0) == pytest.approx(0.01)
    assert bucket.take(1000, now=0.1) == 10
    assert bucket.take(1000, now=0.1) == 0
    assert bucket.take(3, now=0.2) == 3  # at most what is asked for; the rest stays
    assert bucket.take(1000, now=0.2) == 7


def test_saves_up_at_most_its_capacity() -> None:
    bucket = TokenBucket(rate=100.0, capacity=50.0, now=0.0)
    assert bucket.take(1000, now=60.0) == 50


def test_over_a_long_run_the_rate_holds() -> None:
    bucket = TokenBucket(rate=1000.0, capacity=100.0, now=0.0)
    taken = sum(bucket.take(64, now=t / 1000) for t in range(1, 10_001))
    assert taken == 10_000  # 10 s at 1000/s, in steps of 1 ms


def test_rate_zero_is_unlimited() -> None:
    bucket = TokenBucket(rate=0.0, capacity=0.0, now=0.0)
    assert bucket.take(5000, now=0.0) == 5000
    assert bucket.seconds_until_next(now=0.0) == 0.0


@pytest.mark.parametrize(("rate", "capacity"), [(-1.0, 10.0), (float("inf"), 10.0), (10.0, 0.5)])
def test_invalid(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, capacity, now=0.0)
