"""Noticing a new model version: on SIGHUP, and when the store's `current` pointer (or the model
file) changes, polled. A candidate that fails to load, fails the streamability check or reads
another number of features is refused with a log line and a metric; the served version stays.

Loading runs on the poll loop, between batches: the loop pauses for the load (tens of
milliseconds for the numpy backend), the group never sees the worker leave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from consumer.logging_setup import log_event
from consumer.model.step import StepFunction
from consumer.model.store import ModelStore
from consumer.rollout_metrics import RolloutMetrics

log = logging.getLogger("consumer.model_reload")


class ModelReloader:
    def __init__(
        self,
        store: ModelStore,
        metrics: RolloutMetrics,
        *,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.poll_s = poll_s
        self._clock = clock
        self._requested = False
        self._stamp = store.stamp()
        self._next_poll = clock() + poll_s

    def request(self) -> None:
        """Look at the store at the next chance (SIGHUP); safe from a signal handler."""
        self._requested = True

    def candidate(self, served: StepFunction) -> StepFunction | None:
        """A new version to serve, if one was asked for or the pointer changed; None if there
        is none, or it was refused (logged and counted)."""
        now = self._clock()
        asked = self._requested
        if not asked and not (self.poll_s and now >= self._next_poll):
            return None
        self._next_poll = now + self.poll_s
        stamp = self.store.stamp()
        if not asked and stamp == self._stamp:
            return None
        self._requested = False
        self._stamp = stamp  # a refused file is not tried again until it changes
        try:
            step_fn = self.store.load_current()
        except Exception as exc:  # any failure to load leaves the served model serving
            self._refuse(f"{type(exc).__name__}: {exc}", asked)
            return None
        if step_fn.n_features != served.n_features:
            self._refuse(
                f"the candidate reads {step_fn.n_features} features per sample, the served "
                f"version {served.n_features}: producers cannot feed both",
                asked,
            )
            return None
        if step_fn.version == served.version:
            self.metrics.count_reload("unchanged")
            log_event(log, "model_unchanged", model_version=served.version, signal=asked)
            return None
        self.metrics.count_reload("loaded")
        return step_fn

    def _refuse(self, error: str, asked: bool) -> None:
        self.metrics.count_reload("refused")
        log_event(log, "model_refused", level=logging.ERROR, error=error, signal=asked,
                  outcome="the served version keeps serving")  # fmt: skip
