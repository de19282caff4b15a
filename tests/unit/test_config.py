"""Settings: defaults, precedence, validation messages, librdkafka pass-through, redaction."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from pathlib import Path

import orjson
import pytest

from consumer.config import (
    ConfigError,
    Settings,
    add_run_arguments,
    build_settings,
    kafka_passthrough,
    settings_from_args,
)

MODEL = ["--model", "m.keras"]


def test_defaults() -> None:
    s = build_settings(MODEL, {})
    assert s.model_path == Path("m.keras")
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert (s.input_topic, s.output_topic, s.dlq_topic) == (
        "samples",
        "probabilities",
        "samples.dlq",
    )
    assert s.group_id == "lstm-scorer"
    assert s.changelog_topic == "lstm-scorer-state-changelog"
    assert (s.backend, s.guarantee) == ("numpy", "at-least-once")
    assert (s.max_batch, s.max_wait_ms, s.commit_interval_ms) == (1024, 20, 1000)
    assert (s.idle_timeout_s, s.max_steps, s.max_value_bytes) == (3600.0, 0, 65536)
    assert (s.metrics_addr, s.metrics_port, s.health_stale_s) == ("0.0.0.0", 8000, 30.0)
    assert (s.log_format, s.log_level, s.create_topics) == ("text", "INFO", False)
    assert s.startup_timeout_s == 30.0
    # Stable across restarts of the same host or pod: a restarted worker fences its predecessor.
    assert s.instance_id == socket.gethostname()
    assert str(os.getpid()) not in s.instance_id.split("-")
    assert s.transactional_id == f"lstm-scorer-{s.instance_id}"
    base = {"bootstrap.servers": "127.0.0.1:9092"}
    assert s.consumer_properties() == s.producer_properties() == s.admin_properties() == base


@dataclasses.dataclass(frozen=True)
class Precedence:
    flag: str
    env: str
    attr: str
    flag_value: str
    env_value: str
    from_flag: object
    from_env: object
    default: object = None  # None: computed default, not compared


PRECEDENCE = [
    Precedence(
        "--bootstrap-servers",
        "KAFKA_BOOTSTRAP_SERVERS",
        "bootstrap_servers",
        "f:1",
        "e:2",
        "f:1",
        "e:2",
        "127.0.0.1:9092",
    ),
    Precedence(
        "--input-topic", "INPUT_TOPIC", "input_topic", "in-f", "in-e", "in-f", "in-e", "samples"
    ),
    Precedence("--group-id", "GROUP_ID", "group_id", "gf", "ge", "gf", "ge", "lstm-scorer"),
    Precedence(
        "--backend",
        "BACKEND",
        "backend",
        "keras-batched",
        "keras-stateful",
        "keras-batched",
        "keras-stateful",
        "numpy",
    ),
    Precedence(
        "--guarantee",
        "GUARANTEE",
        "guarantee",
        "exactly-once",
        "at-least-once",
        "exactly-once",
        "at-least-once",
        "at-least-once",
    ),
    Precedence("--max-batch", "MAX_BATCH", "max_batch", "7", "9", 7, 9, 1024),
    Precedence(
        "--idle-timeout-s", "IDLE_TIMEOUT_S", "idle_timeout_s", "0.5", "0", 0.5, 0.0, 3600.0
    ),
    Precedence("--metrics-port", "METRICS_PORT", "metrics_port", "0", "9100", 0, 9100, 8000),
    Precedence(
        "--log-level", "LOG_LEVEL", "log_level", "debug", "WARNING", "DEBUG", "WARNING", "INFO"
    ),
    Precedence("--instance-id", "INSTANCE_ID", "instance_id", "pod-a", "pod-b", "pod-a", "pod-b"),
]


@pytest.mark.parametrize("case", PRECEDENCE, ids=[c.attr for c in PRECEDENCE])
def test_flag_beats_env_beats_default(case: Precedence) -> None:
    environ = {case.env: case.env_value}
    assert getattr(build_settings([*MODEL, case.flag, case.flag_value], environ), case.attr) == (
        case.from_flag
    )
    assert getattr(build_settings(MODEL, environ), case.attr) == case.from_env
    if case.default is not None:
        assert getattr(build_settings(MODEL, {}), case.attr) == case.default
        # An empty variable (as compose writes for a missing one) counts as unset.
        assert getattr(build_settings(MODEL, {case.env: ""}), case.attr) == case.default


def test_model_from_env_and_required() -> None:
    assert build_settings([], {"MODEL_PATH": "/models/a.keras"}).model_path == Path(
        "/models/a.keras"
    )
    with pytest.raises(ConfigError, match=r"--model \(MODEL_PATH\)"):
        build_settings([], {})


def test_create_topics_boolean() -> None:
    assert build_settings(MODEL, {"CREATE_TOPICS": "yes"}).create_topics is True
    assert build_settings([*MODEL, "--create-topics"], {}).create_topics is True
    assert (
        build_settings([*MODEL, "--no-create-topics"], {"CREATE_TOPICS": "1"}).create_topics
        is False
    )
    assert build_settings(MODEL, {"CREATE_TOPICS": "off"}).create_topics is False
    with pytest.raises(ConfigError, match=r"--create-topics \(CREATE_TOPICS\).*'maybe'"):
        build_settings(MODEL, {"CREATE_TOPICS": "maybe"})


def test_a_transaction_timeout_within_the_commit_interval_is_refused() -> None:
    eos = {"GUARANTEE": "exactly-once", "COMMIT_INTERVAL_MS": "5000"}
    for bad in ("5000", "100", "soon"):
        environ = {**eos, "KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": bad}
        with pytest.raises(ConfigError, match=r"TRANSACTION_TIMEOUT_MS.*above --commit-interval"):
            build_settings(MODEL, environ)
    chosen = build_settings(MODEL, {**eos, "KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "5001"})
    assert chosen.kafka_producer["transaction.timeout.ms"] == "5001"
    # At-least-once has no transactions: the property is librdkafka's to judge.
    build_settings(
        MODEL, {"COMMIT_INTERVAL_MS": "5000", "KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "1"}
    )


@pytest.mark.parametrize(
    ("args", "environ", "named"),
    [
        (["--max-batch", "0"], {}, "--max-batch (MAX_BATCH)"),
        ([], {"MAX_BATCH": "100001"}, "--max-batch (MAX_BATCH)"),
        (["--max-batch", "1.5"], {}, "--max-batch (MAX_BATCH)"),
        (["--max-wait-ms", "-1"], {}, "--max-wait-ms (MAX_WAIT_MS)"),
        ([], {"COMMIT_INTERVAL_MS": "soon"}, "--commit-interval-ms (COMMIT_INTERVAL_MS)"),
        (["--idle-timeout-s", "-1"], {}, "--idle-timeout-s (IDLE_TIMEOUT_S)"),
        (["--idle-timeout-s", "nan"], {}, "--idle-timeout-s (IDLE_TIMEOUT_S)"),
        (["--max-steps", "-3"], {}, "--max-steps (MAX_STEPS)"),
        (["--max-value-bytes", "1"], {}, "--max-value-bytes (MAX_VALUE_BYTES)"),
        (["--metrics-port", "65536"], {}, "--metrics-port (METRICS_PORT)"),
        (["--metrics-addr", ""], {}, "--metrics-addr (METRICS_ADDR)"),
        (["--health-stale-s", "0"], {}, "--health-stale-s (HEALTH_STALE_S)"),
        (["--startup-timeout-s", "inf"], {}, "--startup-timeout-s (STARTUP_TIMEOUT_S)"),
        (["--backend", "tensorflow"], {}, "--backend (BACKEND)"),
        ([], {"GUARANTEE": "exactly-twice"}, "--guarantee (GUARANTEE)"),
        (["--log-format", "xml"], {}, "--log-format (LOG_FORMAT)"),
        (["--log-level", "loud"], {}, "--log-level (LOG_LEVEL)"),
        (["--input-topic", "bad topic"], {}, "--input-topic (INPUT_TOPIC)"),
        (["--dlq-topic", "x" * 250], {}, "--dlq-topic (DLQ_TOPIC)"),
        (["--output-topic", "samples"], {}, "--output-topic (OUTPUT_TOPIC)"),
        (["--dlq-topic", "probabilities"], {}, "--dlq-topic (DLQ_TOPIC)"),
        (["--group-id", "a/b"], {}, "--group-id (GROUP_ID)"),
        (["--group-id", "g" * 240], {}, "--group-id (GROUP_ID)"),
        (["--group-id", "x", "--input-topic", "x-state-changelog"], {}, "--group-id (GROUP_ID)"),
        (["--bootstrap-servers", "a:1,,b:2"], {}, "--bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS)"),
        (
            [],
            {"KAFKA_BOOTSTRAP_SERVERS": "a:1, b:2"},
            "--bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS)",
        ),
        (["--instance-id", "pod a"], {}, "--instance-id (INSTANCE_ID)"),
        (["--replication-factor", "-1"], {}, "--replication-factor (REPLICATION_FACTOR)"),
        (
            ["--replication-factor", "2", "--min-insync-replicas", "3"],
            {},
            "--min-insync-replicas (MIN_INSYNC_REPLICAS)",
        ),
    ],
)
def test_validation_error_names_flag_and_variable(
    args: list[str], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_settings([*MODEL, *args], environ)
    assert str(caught.value).startswith(named + ": ")


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"^--max-batch \(MAX_BATCH\)"):
        Settings(model_path=Path("m.keras"), max_batch=0)


def test_passthrough_mapping_and_precedence() -> None:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
        "KAFKA_CLIENT_ID": "general",
        "KAFKA_CONSUMER_CLIENT_ID": "consumer-specific",
        "KAFKA_CONSUMER_FETCH_MIN_BYTES": "1024",
        "KAFKA_PRODUCER_LINGER_MS": "5",
        "KAFKA_PRODUCER_COMPRESSION_TYPE": "lz4",
        "KAFKA_STATISTICS_INTERVAL_MS": "",  # empty: unset
        "KAFKA_SOME__UNDERSCORED_NAME": "x",  # `__` spells a literal underscore
        "NOT_KAFKA_LINGER_MS": "9",
    }
    s = build_settings(MODEL, environ)
    common = {
        "bootstrap.servers": "broker:9092",
        "security.protocol": "SASL_SSL",
        "sasl.username": "svc",
        "ssl.ca.location": "/etc/ca.pem",
        "client.id": "general",
        "some_underscored.name": "x",
    }
    assert s.admin_properties() == common
    assert s.consumer_properties() == {
        **common,
        "client.id": "consumer-specific",
        "fetch.min.bytes": "1024",
    }
    assert s.producer_properties() == {**common, "linger.ms": "5", "compression.type": "lz4"}


@pytest.mark.parametrize(
    "variable",
    [
        "KAFKA_ENABLE_AUTO_COMMIT",
        "KAFKA_CONSUMER_ENABLE_AUTO_COMMIT",
        "KAFKA_ENABLE_AUTO_OFFSET_STORE",
        "KAFKA_CONSUMER_ENABLE_AUTO_OFFSET_STORE",
        "KAFKA_GROUP_ID",
        "KAFKA_PRODUCER_TRANSACTIONAL_ID",
        "KAFKA_CONSUMER_GROUP_INSTANCE_ID",
        "KAFKA_CONSUMER_BOOTSTRAP_SERVERS",
    ],
)
def test_passthrough_refuses_properties_the_service_owns(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: .*may not be passed through"):
        build_settings(MODEL, {variable: "false"})


def test_auto_commit_refused_on_direct_construction() -> None:
    with pytest.raises(ConfigError, match=r"^KAFKA_CONSUMER_ENABLE_AUTO_COMMIT: "):
        Settings(model_path=Path("m"), kafka_consumer={"enable.auto.commit": "true"})


@pytest.mark.parametrize(
    "variable", ["KAFKA_consumer_x", "KAFKA_CONSUMER_", "KAFKA__X", "KAFKA_A-B"]
)
def test_passthrough_rejects_malformed_names(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        build_settings(MODEL, {variable: "1"})


SECRETS = {
    "KAFKA_SASL_PASSWORD": "pw-4f1c9e77",
    "KAFKA_SSL_KEY_PASSWORD": "keypw-91ab03",
    "KAFKA_SSL_KEY_PEM": "-----BEGIN PRIVATE KEY-----pem-55d2",
    "KAFKA_SASL_JAAS_CONFIG": "org.apache.Plain required password=jaas-7e21;",
    "KAFKA_CONSUMER_SASL_OAUTHBEARER_CLIENT_SECRET": "oauth-secret-0c3f",
    "KAFKA_PRODUCER_SASL_OAUTHBEARER_CONFIG": "principal=p token=tok-88a1",
}


def test_secrets_never_shown() -> None:
    s = build_settings(MODEL, {**SECRETS, "KAFKA_SASL_USERNAME": "svc-user"})
    shown = [repr(s), str(s), str(s.redacted()), orjson.dumps(s.redacted()).decode()]
    for text in shown:
        for secret in SECRETS.values():
            assert secret not in text
        assert "svc-user" in text  # not a secret: still visible
        assert "'***'" in text or '"***"' in text
    # The clients still get the real values.
    assert s.consumer_properties()["sasl.password"] == SECRETS["KAFKA_SASL_PASSWORD"]
    assert s.consumer_properties()["sasl.oauthbearer.client.secret"] == "oauth-secret-0c3f"
    assert "sasl.oauthbearer.client.secret" not in s.producer_properties()


def test_redacted_is_plain_data() -> None:
    data = build_settings(MODEL, {}).redacted()
    assert data["model_path"] == "m.keras"
    assert data["changelog_topic"] == "lstm-scorer-state-changelog"
    orjson.loads(orjson.dumps(data))  # serialisable for a JSON log line


def test_settings_are_frozen_and_hashable() -> None:
    s = build_settings(MODEL, {"KAFKA_LINGER_MS": "5"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_batch = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.kafka_common["linger.ms"] = "6"  # type: ignore[index]
    assert hash(s) == hash(build_settings(MODEL, {"KAFKA_LINGER_MS": "5"}))


def test_add_run_arguments_on_a_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="consumer")
    run = parser.add_subparsers(dest="command", required=True).add_parser("run")
    add_run_arguments(run)
    args = parser.parse_args(["run", "--model", "x.keras", "--max-batch", "64"])
    s = settings_from_args(args, {"MAX_BATCH": "8", "GUARANTEE": "exactly-once"})
    assert (s.max_batch, s.guarantee, s.model_path) == (64, "exactly-once", Path("x.keras"))


def test_broker_script_and_jvm_variables_are_not_passed_through() -> None:
    environ = {
        "KAFKA_PORT": "19092",
        "KAFKA_HEAP_OPTS": "-Xmx1g",
        "KAFKA_LINGER_MS": "7",
        # the cluster script's, which a shell that started a cluster may still hold
        "KAFKA_TLS": "1",
        "KAFKA_TLS_PORT": "9194",
        "KAFKA_ACLS": "1",
        "KAFKA_BROKERS": "3",
        "KAFKA_CLUSTER_DIR": "/tmp/c",
    }
    common, consumer, producer = kafka_passthrough(environ)
    assert common == {"linger.ms": "7"} and consumer == {} and producer == {}
