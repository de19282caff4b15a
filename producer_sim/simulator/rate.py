"""A token bucket for the aggregate send rate. The clock is passed in, so it is tested without
waiting."""

from __future__ import annotations

import math


class TokenBucket:
    """`rate` tokens a second, at most `capacity` saved up; a rate of 0 means no limit.

    The capacity bounds the burst after a stall (a slow broker, a full producer queue): the
    sender catches up by at most that many records instead of flooding the topic.
    """

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be finite and >= 0, got {rate}")
        if rate > 0 and capacity < 1:
            raise ValueError(f"capacity must be at least 1 token, got {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._tokens = 0.0
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def take(self, most: int, now: float) -> int:
        """Takes up to `most` whole tokens and returns how many it took (maybe 0)."""
        if self.rate == 0:
            return most
        self._refill(now)
        n = min(most, int(self._tokens))
        self._tokens -= n
        return n

    def seconds_until_next(self, now: float) -> float:
        """How long until at least one whole token is available."""
        if self.rate == 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)
