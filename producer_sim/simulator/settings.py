"""Settings of `python -m producer_sim simulate`: each from its flag, else its environment
variable, else its default. Variables are `SIM_<FLAG>` except for the broker and the topic, which
share the service's names (KAFKA_BOOTSTRAP_SERVERS, INPUT_TOPIC). librdkafka properties pass
through as for the service: KAFKA_<PROPERTY> and KAFKA_PRODUCER_<PROPERTY>.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from consumer.config import ConfigError, kafka_passthrough
from producer_sim.simulator.workload import LENGTH_DISTS, WorkloadSettings

ProgressMode = Literal["auto", "line", "plain", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "line", "plain", "none")


@dataclass(frozen=True)
class SimSettings:
    workload: WorkloadSettings
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "samples"
    rate: float = 1000.0  # records per second in total; 0 = as fast as the broker takes them
    count: int = 0  # stop after this many records; 0 = no limit
    duration_s: float = 0.0  # stop after this long; 0 = no limit
    batch: int = 1000  # most records generated and handed to the producer at once
    labels_out: Path | None = None
    progress: ProgressMode = "auto"
    progress_interval_s: float = 5.0
    flush_timeout_s: float = 30.0
    kafka: Mapping[str, str] = field(default_factory=dict)

    def producer_config(self) -> dict[str, object]:
        """Throughput settings first, so the environment can override them."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "partitioner": "murmur2_random",  # keys land where Java clients put them
            "linger.ms": "20",
            "batch.num.messages": "10000",
            "compression.type": "lz4",
            "queue.buffering.max.messages": "500000",
            "delivery.report.only.error": True,  # no Python callback per delivered record
            **self.kafka,
        }


@dataclass(frozen=True)
class _Option:
    name: str  # the dataclass field (of SimSettings, else WorkloadSettings)
    convert: Callable[[str], Any]
    help: str
    env: str = ""
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.removesuffix("_s").replace("_", "-")

    @property
    def variable(self) -> str:
        return self.env or "SIM_" + self.name.removesuffix("_s").upper()


def _path(text: str) -> Path:
    return Path(text)


_OPTIONS: tuple[_Option, ...] = (
    _Option("bootstrap_servers", str, "broker list", env="KAFKA_BOOTSTRAP_SERVERS"),
    _Option("input_topic", str, "topic to send to", env="INPUT_TOPIC"),
    _Option("rate", float, "records per second in total; 0: as fast as possible"),
    _Option("count", int, "stop after this many records; 0: no limit"),
    _Option("duration_s", float, "stop after this many seconds; 0: no limit"),
    _Option("devices", int, "concurrent sequences (devices)"),
    _Option("seed", int, "random seed: the same seed gives the same records"),
    _Option("length_mean", float, "mean sequence length"),
    _Option("length_spread", float, "half-width (uniform) or deviation (normal) of lengths"),
    _Option("length_dist", str, "length distribution", choices=LENGTH_DISTS),
    _Option("max_length", int, "longest sequence"),
    _Option("chunk_ratio", float, "share of messages carrying 2-4 samples"),
    _Option("bare_end_ratio", float, 'share of ended sequences ended by a bare {"end":true}'),
    _Option("never_end_ratio", float, "share of sequences that never send an end marker"),
    _Option("duplicate_ratio", float, "share of messages sent twice in a row"),
    _Option("bad_ratio", float, "malformed records per record, cycling through every DLQ reason"),
    _Option("key_prefix", str, "keys are <prefix>-<device>-<sequence number>"),
    _Option("labels_out", _path, "write {key, label, length, ended} JSON lines here"),
    _Option("progress", str, "auto: a live line on a terminal, else plain", choices=PROGRESS_MODES),
    _Option("progress_interval_s", float, "seconds between plain progress lines"),
    _Option("batch", int, "records generated and produced at once"),
    _Option("flush_timeout_s", float, "longest wait for undelivered records at the end"),
)
_WORKLOAD_FIELDS = frozenset(WorkloadSettings.__dataclass_fields__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {**_defaults(WorkloadSettings()), **_defaults(SimSettings(WorkloadSettings()))}
    for opt in _OPTIONS:
        extra: dict[str, Any] = {"choices": opt.choices} if opt.choices else {"metavar": "V"}
        default = defaults[opt.name]
        shown = "" if default is None else f"; default {default}"
        parser.add_argument(
            opt.flag, dest=opt.name, help=f"{opt.help} [env {opt.variable}{shown}]", **extra
        )


def _defaults(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SimSettings:
    """Raises ConfigError naming the flag and variable of the first invalid value."""
    workload: dict[str, Any] = {}
    sim: dict[str, Any] = {}
    for opt in _OPTIONS:
        raw = getattr(args, opt.name, None)
        if raw is None:
            raw = environ.get(opt.variable) or None
        if raw is None:
            continue
        source = f"{opt.flag} ({opt.variable})"
        if opt.choices and raw not in opt.choices:
            raise ConfigError(source, "must be one of " + ", ".join(opt.choices), raw)
        try:
            value = opt.convert(raw)
        except ValueError:
            raise ConfigError(source, f"not a valid {opt.convert.__name__}", raw) from None
        (workload if opt.name in _WORKLOAD_FIELDS else sim)[opt.name] = value
    try:
        work = WorkloadSettings(**workload)
    except ValueError as exc:
        raise ConfigError("workload", str(exc)) from None
    common, _consumer, producer = kafka_passthrough(environ)
    settings = SimSettings(work, **sim, kafka={**common, **producer})
    _validate(settings)
    return settings


def _validate(s: SimSettings) -> None:
    checks = (
        ("--rate (SIM_RATE)", s.rate >= 0, s.rate),
        ("--count (SIM_COUNT)", s.count >= 0, s.count),
        ("--duration (SIM_DURATION)", s.duration_s >= 0, s.duration_s),
        ("--batch (SIM_BATCH)", 1 <= s.batch <= 100_000, s.batch),
        ("--progress-interval (SIM_PROGRESS_INTERVAL)", s.progress_interval_s > 0, None),
        ("--flush-timeout (SIM_FLUSH_TIMEOUT)", s.flush_timeout_s >= 0, s.flush_timeout_s),
    )
    for source, ok, value in checks:
        if not ok:
            raise ConfigError(source, "out of range", value)
    if not s.bootstrap_servers or not s.input_topic:
        raise ConfigError("--bootstrap-servers/--input-topic", "must not be empty")


def build_settings(argv: Sequence[str], environ: Mapping[str, str]) -> SimSettings:
    parser = argparse.ArgumentParser(prog="producer_sim simulate")
    add_arguments(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ)
