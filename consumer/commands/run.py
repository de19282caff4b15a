"""`python -m consumer run`: the service. Start-up problems exit non-zero with a specific message:
2 for settings and the model, 3 for Kafka and topics. A failure while running exits 1 after
committing nothing of the batch it failed on."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from consumer.config import ConfigError, Settings, add_run_arguments, settings_from_args
from consumer.engine import compiled_loops
from consumer.http_endpoints import Health, HttpEndpoints
from consumer.kafka_clients import StartupError, prepare_topics
from consumer.logging_setup import configure_logging, log_event
from consumer.metrics import Metrics
from consumer.model import ModelError, StepFunction, compiled_cells, load_step_function
from consumer.model.store import ModelStore
from consumer.shadow import ShadowScoring

if TYPE_CHECKING:
    from consumer.runner import Runner

log = logging.getLogger("consumer")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer run",
        description="Consume samples, score every one with the recurrent model, produce outputs.",
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    log_event(log, "starting", settings=settings.redacted())
    try:
        store = ModelStore(settings.model_path, settings.backend)
        step_fn = store.load_current()
        shadow = _shadow(settings, step_fn)
    except ModelError as exc:
        log_event(log, "model_refused", level=logging.ERROR, error=str(exc))
        return 2
    # Whatever start-up allocated lives for good (with the Keras backends, TensorFlow's ~300k
    # objects): frozen, the cyclic GC does not walk it again and again while the loop allocates.
    gc.freeze()
    if settings.features and settings.features != step_fn.n_features:
        log_event(
            log,
            "feature_count_mismatch",
            level=logging.ERROR,
            error=f"the model reads {step_fn.n_features} features per sample but --features "
            f"(FEATURES) says producers send {settings.features}; serve a model trained on "
            f"{settings.features} features or correct --features",
        )
        return 2
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.set_build_info(step_fn.version, settings.backend, settings.guarantee)
    health = Health(settings.health_stale_s)
    endpoints = None
    if settings.metrics_port:
        # Bound before Kafka is asked anything: a taken port is a settings problem, reported
        # as one, and /healthz answers while the topics are checked.
        try:
            endpoints = HttpEndpoints(
                settings.metrics_addr, settings.metrics_port, registry, health
            ).start()
        except OSError as exc:
            log_event(
                log,
                "startup_failed",
                level=logging.ERROR,
                error=f"cannot serve /metrics on {settings.metrics_addr}:{settings.metrics_port}"
                f" (--metrics-port, METRICS_PORT): {exc.strerror or exc}",
            )
            return 2
    try:
        topology = prepare_topics(settings)
    except StartupError as exc:
        log_event(log, "startup_failed", level=logging.ERROR, error=str(exc))
        if endpoints is not None:
            endpoints.stop()
        return 3
    from consumer.runner import Runner  # noqa: PLC0415  (after the cheap checks)

    runner = Runner(settings, step_fn, metrics, health, store=store, shadow=shadow)

    _handle_signals(runner)
    products = getattr(step_fn, "matmul_kinds", None)
    _warn_of_slow_products(products)
    log_event(
        log,
        "running",
        model_version=step_fn.version,
        products=products,
        compiled_loops=compiled_loops.BUILT,
        compiled_cells=compiled_cells.BUILT,
        input_partitions=topology.input_partitions,
        metrics_port=endpoints.port if endpoints else None,
    )
    try:
        runner.run()
    except Exception as exc:
        # Nothing of the failed batch was committed: a restarted worker reads it again.
        log_event(
            log,
            "worker_failed",
            level=logging.ERROR,
            exc_info=True,
            error=f"{type(exc).__name__}: {exc}",
        )
        return 1
    finally:
        if endpoints is not None:
            endpoints.stop()
    return 0


def _shadow(settings: Settings, served: StepFunction) -> ShadowScoring | None:
    """The shadow model, if one is asked for (ModelError naming --shadow-model if unusable)."""
    path = settings.shadow_model
    if path is None:
        return None
    try:
        step_fn = load_step_function(path, settings.backend)
    except ModelError as exc:
        raise ModelError(f"--shadow-model {path}: {exc}") from exc
    if step_fn.n_features != served.n_features:
        raise ModelError(
            f"--shadow-model {path} reads {step_fn.n_features} features per sample, the served "
            f"model {served.n_features}: it cannot score the same samples"
        )
    return ShadowScoring(step_fn, settings.shadow_topic, max_steps=settings.max_steps)


def _handle_signals(runner: Runner) -> None:
    """SIGTERM and SIGINT stop the worker cleanly; SIGHUP looks for a new model version."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        log_event(log, "stopping", signal=signal.Signals(signum).name)
        runner.stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        log_event(log, "model_reload_requested", signal="SIGHUP")
        runner.reload_model()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)


def _warn_of_slow_products(products: dict[str, int] | None) -> None:
    if products and "ordered" in products:
        log_event(
            log,
            "slow_products",
            level=logging.WARNING,
            detail="this machine's BLAS does not keep rows independent for some of the model's "
            "products; they run in the exact but slower ordered fallback",
            products=products,
        )
