"""The simulator's settings: flag, else environment, else default; invalid values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.config import ConfigError
from producer_sim.simulator.command import parser, progress_style
from producer_sim.simulator.settings import build_settings


def test_defaults() -> None:
    s = build_settings([], {})
    assert (s.bootstrap_servers, s.input_topic, s.rate, s.count, s.duration_s) == (
        "127.0.0.1:9092",
        "samples",
        1000.0,
        0,
        0.0,
    )
    assert s.workload.length_mean == 7.0 and s.workload.devices == 1000
    assert s.labels_out is None


def test_flags_win_over_the_environment() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "INPUT_TOPIC": "env-in", "SIM_RATE": "5"}
    s = build_settings(["--input-topic", "flag-in", "--devices", "12"], env)
    assert (s.bootstrap_servers, s.input_topic, s.rate, s.workload.devices) == (
        "k:1",
        "flag-in",
        5.0,
        12,
    )


def test_every_option_is_reachable_by_flag() -> None:
    s = build_settings(
        [
            "--rate", "0", "--count", "10", "--duration", "2.5", "--seed", "3",
            "--length-mean", "5", "--length-spread", "1", "--length-dist", "normal",
            "--max-length", "9", "--chunk-ratio", "0.5", "--bare-end-ratio", "1",
            "--never-end-ratio", "0.1", "--duplicate-ratio", "0.2", "--bad-ratio", "0.3",
            "--key-prefix", "car", "--labels-out", "l.jsonl", "--progress", "none",
            "--progress-interval", "2", "--batch", "7", "--flush-timeout", "4",
        ],
        {},
    )  # fmt: skip
    w = s.workload
    assert (s.rate, s.count, s.duration_s, s.batch, s.flush_timeout_s) == (0, 10, 2.5, 7, 4)
    assert (w.seed, w.length_mean, w.length_spread, w.length_dist, w.max_length) == (
        3,
        5,
        1,
        "normal",
        9,
    )
    assert (w.chunk_ratio, w.bare_end_ratio, w.never_end_ratio) == (0.5, 1, 0.1)
    assert (w.duplicate_ratio, w.bad_ratio, w.key_prefix) == (0.2, 0.3, "car")
    assert (s.labels_out, s.progress, s.progress_interval_s) == (Path("l.jsonl"), "none", 2)


def test_librdkafka_properties_pass_through_and_override_defaults() -> None:
    env = {"KAFKA_LINGER_MS": "50", "KAFKA_PRODUCER_ACKS": "1", "KAFKA_CONSUMER_X_Y": "z"}
    config = build_settings([], env).producer_config()
    assert config["linger.ms"] == "50" and config["acks"] == "1"
    assert "x.y" not in config
    assert config["partitioner"] == "murmur2_random"


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--rate", "fast"], {}, "--rate (SIM_RATE)"),
        ([], {"SIM_COUNT": "-1"}, "--count (SIM_COUNT)"),
        (["--chunk-ratio", "2"], {}, "chunk_ratio"),
        (["--batch", "0"], {}, "--batch (SIM_BATCH)"),
        ([], {"SIM_PROGRESS": "loud"}, "--progress (SIM_PROGRESS)"),
    ],
)
def test_invalid_values_are_named(argv: list[str], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        build_settings(argv, env)


def test_progress_style_follows_the_terminal() -> None:
    auto = build_settings([], {})
    assert progress_style(auto, is_tty=True) == "line"
    assert progress_style(auto, is_tty=False) == "plain"
    assert progress_style(build_settings(["--progress", "none"], {}), is_tty=True) == "none"


def test_help_documents_exit_status() -> None:
    text = parser().format_help()
    assert "130" in text and "SIGTERM" in text and "--labels-out" in text
