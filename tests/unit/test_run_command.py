"""`python -m consumer run` refuses bad start-up conditions before it touches Kafka."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from consumer.commands import run

# Nothing listens here: reaching Kafka would be a failure of these tests, not a pass.
NO_BROKER = ["--bootstrap-servers", "127.0.0.1:1", "--startup-timeout-s", "1"]


def test_a_missing_model_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.keras"
    assert run.main(["--model", str(missing), *NO_BROKER]) == 2
    assert "nope.keras" in capsys.readouterr().err


def test_a_feature_count_mismatch_exits_2(
    saved_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = run.main(["--model", str(saved_models["user"]), "--features", "4", *NO_BROKER])
    assert code == 2
    assert "feature_count_mismatch" in capsys.readouterr().err


def test_an_unreachable_broker_exits_3(
    saved_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run.main(["--model", str(saved_models["user"]), "--features", "3", *NO_BROKER]) == 3
    assert "unreachable" in capsys.readouterr().err


def test_a_taken_metrics_port_exits_2_naming_the_flag_before_touching_kafka(
    saved_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # A taken port used to escape main() as an OSError traceback, after the Kafka checks.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["--model", str(saved_models["user"]), *NO_BROKER]
        code = run.main([*argv, "--metrics-addr", "127.0.0.1", "--metrics-port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "--metrics-port" in err
    assert "unreachable" not in err


def test_a_bad_setting_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--model", "m.keras", "--max-batch", "0"]) == 2
    assert "--max-batch" in capsys.readouterr().err


class _FailingRunner:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def stop(self) -> None:
        pass

    def reload_model(self) -> None:
        pass

    def run(self) -> None:
        raise RuntimeError("injected failure")


def test_a_failure_while_running_exits_1_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The exception used to escape main(): a traceback and whatever exit code Python chose.
    from consumer import runner  # noqa: PLC0415
    from consumer.kafka_clients import Topology  # noqa: PLC0415
    from consumer.model.store import ModelStore  # noqa: PLC0415
    from tests.prefix_sum_step import PrefixSumStep  # noqa: PLC0415

    monkeypatch.setattr(ModelStore, "load_current", lambda self: PrefixSumStep())
    monkeypatch.setattr(run, "prepare_topics", lambda settings: Topology(1))
    monkeypatch.setattr(runner, "Runner", _FailingRunner)
    assert run.main(["--model", "m.keras", "--metrics-port", "0", "--log-format", "json"]) == 1
    err = capsys.readouterr().err
    assert '"event":"worker_failed"' in err and "injected failure" in err
