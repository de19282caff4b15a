"""Service settings: one frozen object built from command-line flags and environment variables.

Every setting is taken from its flag, else its environment variable, else its default. An empty
environment variable counts as unset (compose files expand missing variables to "").

librdkafka properties pass through from the environment:

    KAFKA_<PROPERTY>           consumer, producer and admin client
    KAFKA_CONSUMER_<PROPERTY>  consumer only, overriding KAFKA_<PROPERTY>
    KAFKA_PRODUCER_<PROPERTY>  producer only, overriding KAFKA_<PROPERTY>

<PROPERTY> is the property name in upper case with `.` written `_` and a literal `_` written `__`
(KAFKA_SECURITY_PROTOCOL -> security.protocol). KAFKA_BOOTSTRAP_SERVERS is --bootstrap-servers;
the local broker script's variables (KAFKA_PORT, KAFKA_RUN_DIR, ...) and the Kafka JVM tools'
(KAFKA_OPTS, KAFKA_HEAP_OPTS, ...) are not passed through.
"""

from __future__ import annotations

import argparse
import math
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from consumer.model.step import BACKENDS, BackendName
from consumer.model.store import CHANGE_POLICIES, ChangePolicy

Guarantee = Literal["at-least-once", "exactly-once"]
GUARANTEES: tuple[Guarantee, ...] = ("at-least-once", "exactly-once")
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

REDACTED = "***"
# Substrings of property names whose values may be credentials or key material.
_SECRET_MARKERS = ("password", "secret", "sasl.jaas.config", "oauthbearer.config", "key", "token")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_CHANGELOG_SUFFIX = "-state-changelog"
_PROPERTY = re.compile(r"[a-z0-9]+(?:[._][a-z0-9]+)*")
_ENV_PROPERTY = re.compile(r"[A-Z0-9]+(?:__?[A-Z0-9]+)*")
# KAFKA_* variables that are not librdkafka properties: the flag's own variable, the local
# broker script's settings and the Kafka JVM tools' settings, which may be set in the same shell.
_NOT_PROPERTIES = frozenset(
    {
        "KAFKA_BOOTSTRAP_SERVERS",
        *(f"KAFKA_{n}" for n in ("PORT", "CONTROLLER_PORT", "SASL_PORT", "SASL_USER", "RUN_DIR")),
        *(f"KAFKA_{n}" for n in ("EXTRA_CONFIG", "LOG_LINES", "PYTHON", "START_TIMEOUT")),
        *(f"KAFKA_{n}" for n in ("STOP_TIMEOUT", "HOME", "OPTS", "HEAP_OPTS", "JVM_OPTS")),
        *(f"KAFKA_{n}" for n in ("LOG4J_OPTS", "JMX_OPTS", "GC_LOG_OPTS", "DEBUG", "CLUSTER_ID")),
        "KAFKA_JVM_PERFORMANCE_OPTS",
        # local-kafka.sh's and local-kafka-cluster.sh's TLS, ACL and cluster settings
        *(f"KAFKA_{n}" for n in ("TLS", "TLS_PORT", "TLS_DIR", "ACLS", "NODE_ID", "BROKERS")),
        *(f"KAFKA_{n}" for n in ("QUORUM_VOTERS", "REPLICATION", "CLUSTER_DIR")),
    }
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Properties the service sets itself; letting the environment change them would break commits.
_OWNED_PROPERTIES = {
    "bootstrap.servers": "set it with --bootstrap-servers",
    "group.id": "set it with --group-id",
    "transactional.id": "it is derived from --group-id and --instance-id",
    "group.instance.id": "set it with --instance-id",
    "enable.auto.commit": "the service commits offsets itself, after outputs are delivered",
    "enable.auto.offset.store": "the service stores offsets itself, after outputs are delivered",
}


class ConfigError(ValueError):
    """A setting is missing or invalid; `source` names the flag and/or environment variable."""

    def __init__(self, source: str, problem: str, value: object = None) -> None:
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{source}: {problem}{shown}")
        self.source = source
        self.problem = problem


# One line of help per setting, in --help order. The flag is --<name-with-dashes> and the
# variable <NAME> unless _FLAGS/_ENVS say otherwise.
_HELP: dict[str, str] = {
    "model_path": "Keras model file, or a model store directory with a `current` pointer "
    "(required)",
    "on_model_change": "when --model's current version changes: "
    + "|".join(CHANGE_POLICIES)
    + " (drain: running sequences finish on their version)",
    "shadow_model": "a candidate model that also scores every sample, with its own state, "
    "written to --shadow-topic (evaluation only)",
    "shadow_topic": "topic of the shadow model's outputs (required with --shadow-model)",
    "model_poll_s": "how often to look for a changed model (SIGHUP looks at once); 0: only on "
    "SIGHUP",
    "bootstrap_servers": "comma-separated host:port list",
    "input_topic": "topic of samples",
    "output_topic": "topic of probabilities",
    "dlq_topic": "dead-letter topic for bad input",
    "group_id": "consumer group; the changelog topic is <group-id>-state-changelog",
    "backend": "model backend: " + "|".join(BACKENDS),
    "guarantee": "delivery guarantee: " + "|".join(GUARANTEES),
    "max_batch": "records per micro-batch, 1..100000",
    "max_wait_ms": "longest wait to fill a micro-batch",
    "commit_interval_ms": "time between commits (transaction length); 0: every micro-batch",
    "idle_timeout_s": "evict sequences idle this long; 0 disables",
    "max_steps": "end a sequence after this many samples; 0 = unlimited",
    "max_value_bytes": "larger input values go to the dead-letter topic",
    "metrics_addr": "HTTP listen address",
    "metrics_port": "HTTP port for /metrics, /healthz, /readyz; 0 disables the server",
    "health_stale_s": "/healthz fails when the loop has not polled for this long",
    "log_format": "|".join(LOG_FORMATS),
    "log_level": "|".join(LOG_LEVELS),
    "create_topics": "create missing topics at start",
    "replication_factor": "replicas of each topic --create-topics creates; 0: min(3, brokers)",
    "min_insync_replicas": "min.insync.replicas of each topic --create-topics creates; "
    "0: min(2, replicas)",
    "instance_id": "worker name, stable across restarts and unique in the group: "
    "group.instance.id and transactional.id <group-id>-<instance-id>; default the host name",
    "startup_timeout_s": "give up when the broker is not reachable within this time",
    "features": "features per sample the producers send; the model must read exactly this many "
    "(checked at start); 0: whatever the model reads",
}
_FLAGS = {"model_path": "--model"}
_ENVS = {"bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _env(name: str) -> str:
    return _ENVS.get(name, name.upper())


def default_instance_id() -> str:
    """The host name (on Kubernetes, the pod name): the same across restarts, so a restarted
    worker fences its predecessor's transaction and keeps its static group membership. Several
    workers on one host need an --instance-id each."""
    return socket.gethostname() or "localhost"


def transactional_id(group_id: str, instance_id: str) -> str:
    """A worker's transactional id: one per static member, so a restarted worker fences its
    predecessor, and a successor can fence a member that left (`consumer.departed_writers`)."""
    return f"{group_id}-{instance_id}"


def is_secret(property_name: str) -> bool:
    """Whether a librdkafka property may hold credentials or key material."""
    name = property_name.lower()
    return any(marker in name for marker in _SECRET_MARKERS)


def redact_properties(properties: Mapping[str, str]) -> dict[str, str]:
    return {k: REDACTED if is_secret(k) else v for k, v in properties.items()}


@dataclass(frozen=True, kw_only=True, repr=False)
class Settings:
    """Everything the service needs to run. Validated on construction; `repr` hides secrets."""

    model_path: Path
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "samples"
    output_topic: str = "probabilities"
    dlq_topic: str = "samples.dlq"
    group_id: str = "lstm-scorer"
    backend: BackendName = "numpy"
    on_model_change: ChangePolicy = "drain"
    model_poll_s: float = 10.0
    shadow_model: Path | None = None
    shadow_topic: str = ""
    guarantee: Guarantee = "at-least-once"
    max_batch: int = 1024
    max_wait_ms: int = 20
    # One default for both guarantees: at-least-once replays at most this much after a crash,
    # exactly-once makes downstream read_committed consumers wait about this long.
    commit_interval_ms: int = 1000
    idle_timeout_s: float = 3600.0
    max_steps: int = 0
    max_value_bytes: int = 65536
    metrics_addr: str = "0.0.0.0"
    metrics_port: int = 8000
    health_stale_s: float = 30.0
    log_format: LogFormat = "text"
    log_level: LogLevel = "INFO"
    create_topics: bool = False
    replication_factor: int = 0
    min_insync_replicas: int = 0
    instance_id: str = field(default_factory=default_instance_id)
    startup_timeout_s: float = 30.0
    features: int = 0
    kafka_common: Mapping[str, str] = field(default_factory=dict, hash=False)
    kafka_consumer: Mapping[str, str] = field(default_factory=dict, hash=False)
    kafka_producer: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("kafka_common", "kafka_consumer", "kafka_producer"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        _validate(self)

    @property
    def changelog_topic(self) -> str:
        return f"{self.group_id}{_CHANGELOG_SUFFIX}"

    @property
    def transactional_id(self) -> str:
        return transactional_id(self.group_id, self.instance_id)

    def consumer_properties(self) -> dict[str, str]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            **self.kafka_common,
            **self.kafka_consumer,
        }

    def producer_properties(self) -> dict[str, str]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            **self.kafka_common,
            **self.kafka_producer,
        }

    def admin_properties(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka_common}

    def redacted(self) -> dict[str, object]:
        """All settings for the start-up log line, with secret property values replaced."""
        out: dict[str, object] = {}
        for f in fields(self):
            if not f.name.startswith("kafka_"):
                value = getattr(self, f.name)
                out[f.name] = str(value) if isinstance(value, Path) else value
        out["changelog_topic"] = self.changelog_topic
        out["transactional_id"] = self.transactional_id
        out["consumer_properties"] = redact_properties(self.consumer_properties())
        out["producer_properties"] = redact_properties(self.producer_properties())
        out["admin_properties"] = redact_properties(self.admin_properties())
        return out

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.redacted().items()) + ")"


def _fail(name: str, problem: str, value: object = None) -> ConfigError:
    return ConfigError(f"{_flag(name)} ({_env(name)})", problem, value)


def _check_range(s: Settings, name: str, low: float, high: float) -> None:
    value = getattr(s, name)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(name, "must be a finite number", value)
    if not low <= value <= high:
        raise _fail(name, f"must be between {low:g} and {high:g}", value)


def _check_transaction_timeout(s: Settings) -> None:
    """A transaction lasts a commit interval; one the broker aborts sooner fails every commit."""
    value = s.kafka_producer.get("transaction.timeout.ms")
    if s.guarantee != "exactly-once" or value is None:
        return
    try:
        timeout_ms = int(value)
    except ValueError:
        timeout_ms = -1
    if timeout_ms <= s.commit_interval_ms:
        raise ConfigError(
            "KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS",
            f"must be a number of milliseconds above --commit-interval-ms ({s.commit_interval_ms})"
            ": the broker aborts a transaction older than it, so every commit would fail",
            value,
        )


def _validate(s: Settings) -> None:
    if str(s.model_path) in ("", "."):
        raise _fail("model_path", "a model file is required")
    _validate_kafka_names(s)
    for name, choices in _CHOICES.items():
        if getattr(s, name) not in choices:
            raise _fail(name, "must be one of " + ", ".join(choices), getattr(s, name))
    _check_range(s, "max_batch", 1, 100_000)
    _check_range(s, "max_wait_ms", 0, 60_000)
    _check_range(s, "commit_interval_ms", 0, 600_000)
    _check_range(s, "idle_timeout_s", 0, 30 * 86_400)
    _check_range(s, "max_steps", 0, 1_000_000_000)
    _check_range(s, "model_poll_s", 0, 86_400)
    _check_range(s, "max_value_bytes", 16, 16 * 1024 * 1024)
    _check_range(s, "metrics_port", 0, 65_535)
    _check_range(s, "health_stale_s", 0.001, 86_400)
    _check_range(s, "startup_timeout_s", 0.001, 86_400)
    _check_range(s, "features", 0, 100_000)
    _check_range(s, "replication_factor", 0, 32)
    _check_range(s, "min_insync_replicas", 0, 32)
    if s.replication_factor and s.min_insync_replicas > s.replication_factor:
        raise _fail(
            "min_insync_replicas",
            f"must not exceed --replication-factor ({s.replication_factor}): no write could "
            "ever be acknowledged",
            s.min_insync_replicas,
        )
    _check_transaction_timeout(s)
    if not s.metrics_addr or any(ch.isspace() for ch in s.metrics_addr):
        raise _fail("metrics_addr", "must be a host name or address", s.metrics_addr)
    if not 0 < len(s.instance_id) <= 200 or not s.instance_id.isprintable() or " " in s.instance_id:
        raise _fail(
            "instance_id", "must be 1-200 printable characters without spaces", s.instance_id
        )
    for prefix, props in (
        ("KAFKA_", s.kafka_common),
        ("KAFKA_CONSUMER_", s.kafka_consumer),
        ("KAFKA_PRODUCER_", s.kafka_producer),
    ):
        for prop in props:
            env = prefix + prop.upper().replace("_", "__").replace(".", "_")
            if not _PROPERTY.fullmatch(prop):
                raise ConfigError(env, f"not a librdkafka property name: {prop!r}")
            if prop in _OWNED_PROPERTIES:
                raise ConfigError(
                    env, f"{prop} may not be passed through: {_OWNED_PROPERTIES[prop]}"
                )


def kafka_passthrough(
    environ: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The (common, consumer-only, producer-only) librdkafka properties named in `environ`."""
    common: dict[str, str] = {}
    consumer: dict[str, str] = {}
    producer: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith("KAFKA_") or name in _NOT_PROPERTIES or not value:
            continue
        rest, target = name.removeprefix("KAFKA_"), common
        if rest.startswith("CONSUMER_"):
            rest, target = rest.removeprefix("CONSUMER_"), consumer
        elif rest.startswith("PRODUCER_"):
            rest, target = rest.removeprefix("PRODUCER_"), producer
        if not _ENV_PROPERTY.fullmatch(rest):
            raise ConfigError(name, "expected KAFKA_[CONSUMER_|PRODUCER_]<PROPERTY> in upper case")
        target[rest.replace("__", "\0").replace("_", ".").replace("\0", "_").lower()] = value
    return common, consumer, producer


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds every setting's flag. Values stay strings (None when absent): see settings_from_args."""
    group = parser.add_argument_group("service settings (flag, else environment, else default)")
    for name, text in _HELP.items():
        default = _DEFAULTS[name]
        shown = f"; default {default}" if isinstance(default, str | int | float) else ""
        kind: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction}
            if name == "create_topics"
            else {"metavar": "VALUE"}
        )
        group.add_argument(
            _flag(name), dest=name, default=None, help=f"{text} [env {_env(name)}{shown}]", **kind
        )


_CHOICES: dict[str, tuple[str, ...]] = {
    "backend": BACKENDS,
    "on_model_change": CHANGE_POLICIES,
    "guarantee": GUARANTEES,
    "log_format": LOG_FORMATS,
    "log_level": LOG_LEVELS,
}
_DEFAULTS: dict[str, object] = {f.name: f.default for f in fields(Settings)}


def _raw(name: str, args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    value = getattr(args, name, None)
    if value is not None:
        return str(value)
    return environ.get(_env(name)) or None


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise _fail(name, "must be one of " + ", ".join(choices), raw)
    return raw


def _number(name: str, raw: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(raw.strip())
    except ValueError:
        problem = "must be an integer" if kind is int else "must be a number"
        raise _fail(name, problem, raw) from None


def _bool(name: str, raw: str) -> bool:
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise _fail(name, "must be one of true/false, 1/0, yes/no, on/off", raw)


# Any: each field's own type; Settings checks the values.
def _convert(name: str, text: str) -> Any:
    default = _DEFAULTS[name]
    if name in ("model_path", "shadow_model"):
        return Path(text)
    if name in _CHOICES:
        return _choice(name, text.upper() if name == "log_level" else text, _CHOICES[name])
    if name == "create_topics":
        return _bool(name, text)
    if isinstance(default, int | float):
        return _number(name, text, type(default))
    return text


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Resolves flags parsed by a parser set up with `add_run_arguments`, then the environment."""
    values: dict[str, Any] = {}
    for name in _HELP:
        text = _raw(name, args, environ)
        if text is not None:
            values[name] = _convert(name, text)
    if "model_path" not in values:
        raise _fail("model_path", "a model file is required")
    common, consumer, producer = kafka_passthrough(environ)
    return Settings(**values, kafka_common=common, kafka_consumer=consumer, kafka_producer=producer)


def build_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from a `run` command line (without the command itself) and an environment."""
    parser = argparse.ArgumentParser(prog="consumer run")
    add_run_arguments(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ)


def _validate_kafka_names(s: Settings) -> None:
    """Servers, topics and the group: well formed, and no topic used for two things."""
    servers = s.bootstrap_servers.split(",")
    if not all(servers) or any(ch.isspace() for ch in s.bootstrap_servers):
        raise _fail("bootstrap_servers", "must be a comma-separated host:port list", servers)
    if (s.shadow_model is None) != (not s.shadow_topic):
        raise _fail("shadow_topic", "--shadow-model and --shadow-topic go together", s.shadow_topic)
    topics = ["input_topic", "output_topic", "dlq_topic"] + (
        ["shadow_topic"] * bool(s.shadow_topic)
    )
    for name in topics:
        topic = getattr(s, name)
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise _fail(name, "not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)", topic)
    if not s.group_id or not _TOPIC.fullmatch(s.changelog_topic):
        problem = "must be usable in a topic name (1-233 of A-Z a-z 0-9 . _ -)"
        raise _fail("group_id", problem, s.group_id)
    seen: dict[str, str] = {}
    for name in [*topics, "group_id"]:
        topic = s.changelog_topic if name == "group_id" else getattr(s, name)
        if topic in seen:
            raise _fail(name, f"topic {topic!r} is also {_flag(seen[topic])}", topic)
        seen[topic] = name
