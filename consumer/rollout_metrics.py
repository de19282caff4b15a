"""Metrics of model rollouts: reloads, and sequences and outputs per model version.

Series of a version the worker no longer holds are removed, so a dashboard shows the versions
live now; `model_draining_seconds` is what the "draining too long" alert reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Literal, get_args

from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

ReloadOutcome = Literal["loaded", "refused", "unchanged"]
RELOAD_OUTCOMES: tuple[ReloadOutcome, ...] = get_args(ReloadOutcome)


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry, namespace: str) -> None:
        ns = namespace
        self.reloads = Counter(
            "model_reloads",
            "Looks at a changed model (SIGHUP or the current pointer), by outcome.",
            ["outcome"],
            namespace=ns,
            registry=registry,
        )
        self._reloads = {o: self.reloads.labels(outcome=o) for o in RELOAD_OUTCOMES}
        self.sequences = Gauge(
            "model_sequences",
            "Sequences with state in memory, per model version.",
            ["model_version"],
            namespace=ns,
            registry=registry,
        )
        self.outputs = Counter(
            "model_outputs",
            "Output records, per model version that computed them.",
            ["model_version"],
            namespace=ns,
            registry=registry,
        )
        self.draining_seconds = Gauge(
            "model_draining_seconds",
            "Time since a version stopped being the current one while it still holds state (0 for "
            "the current one).",
            ["model_version"],
            namespace=ns,
            registry=registry,
        )
        self._held: set[str] = set()
        self._draining: set[str] = set()

    def count_reload(self, outcome: ReloadOutcome) -> None:
        self._reloads[outcome].inc()

    def count_outputs(self, model_version: str, records: int) -> None:
        self.outputs.labels(model_version=model_version).inc(records)

    def set_versions(self, sequences: Mapping[str, int], draining_for: Mapping[str, float]) -> None:
        """The versions held now: their sequences, and how long each draining one has drained.
        (The current version is `build_info`'s `model_version`.)"""
        for gone in self._held - set(sequences):
            for metric in (self.sequences, self.outputs):
                _remove(metric, gone)
        for gone in self._draining - set(draining_for):
            _remove(self.draining_seconds, gone)
        for version, n in sequences.items():
            self.sequences.labels(model_version=version).set(n)
        for version, seconds in draining_for.items():
            self.draining_seconds.labels(model_version=version).set(seconds)
        self._held = set(sequences)
        self._draining = set(draining_for)


def _remove(metric: Counter | Gauge, version: str) -> None:
    with contextlib.suppress(KeyError):  # no series yet: nothing to remove
        metric.remove(version)


class ShadowMetrics:
    """Shadow scoring: its outputs, and how the live outputs compare with them per version pair
    (mean absolute difference = abs_difference / compared; agreement = agreeing / compared)."""

    def __init__(self, registry: CollectorRegistry, namespace: str) -> None:
        pair = ["model_version", "shadow_version"]

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        self.outputs = counter(
            "shadow_outputs", "Output records of the shadow model.", ["shadow_version"]
        )
        self.compared = counter(
            "shadow_compared_outputs", "Live outputs compared with the shadow's.", pair
        )
        self.abs_difference = counter(
            "shadow_abs_difference",
            "Sum of |live - shadow| over compared outputs (first output unit).",
            pair,
        )
        self.agreeing = counter(
            "shadow_agreeing_outputs",
            "Compared outputs where live and shadow fall on the same side of 0.5.",
            pair,
        )

    def count_outputs(self, shadow_version: str, records: int) -> None:
        self.outputs.labels(shadow_version=shadow_version).inc(records)

    def observe(
        self, model_version: str, shadow_version: str, compared: int, diff: float, agreeing: int
    ) -> None:
        labels = {"model_version": model_version, "shadow_version": shadow_version}
        self.compared.labels(**labels).inc(compared)
        self.abs_difference.labels(**labels).inc(diff)
        self.agreeing.labels(**labels).inc(agreeing)
