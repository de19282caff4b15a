"""`run`, `replay` (numpy backend) and `check-model` never import TensorFlow or Keras: each runs in
a fresh interpreter, and `sys.modules` is read after the command has loaded the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "tf_keras")

# Runs one command through `python -m consumer`'s own entry point, then reports its exit code
# and every heavy module the process imported, as one JSON line on stdout's last line.
PROBE = """
import json, sys
from consumer.__main__ import main
code = main(json.loads(sys.argv[1]))
import consumer.runner  # the rest of the service, imported as a running worker has it
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def probe(argv: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.stdout.strip(), done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_check_model_does_not_import_tensorflow(
    saved_models: dict[str, Path], tmp_path: Path, suffix: str
) -> None:
    path = saved_models["user"]
    if suffix == ".h5":
        from tests.unit.model.conftest import zoo_model  # noqa: PLC0415

        path = tmp_path / "user.h5"
        zoo_model("user").save(path)
    assert probe(["check-model", str(path)]) == {"code": 0, "heavy": []}


def test_replay_does_not_import_tensorflow(saved_models: dict[str, Path], tmp_path: Path) -> None:
    records = tmp_path / "in.jsonl"
    lines = [{"key": f"k{i % 3}", "value": {"features": [0.1 * i, 0.2, -0.3]}} for i in range(9)]
    records.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    argv = ["replay", "--model", str(saved_models["user"]), "--input", str(records)]
    assert probe([*argv, "--output", str(out)]) == {"code": 0, "heavy": []}
    assert len(out.read_text().splitlines()) == 9


def test_run_loads_the_model_without_tensorflow(saved_models: dict[str, Path]) -> None:
    # Nothing listens on port 1: the worker loads the model, then stops at Kafka with exit 3.
    argv = ["run", "--model", str(saved_models["user"]), "--bootstrap-servers", "127.0.0.1:1"]
    result = probe([*argv, "--startup-timeout-s", "1", "--metrics-port", "0"])
    assert result == {"code": 3, "heavy": []}


def test_the_probe_sees_tensorflow_when_a_command_imports_it(
    saved_models: dict[str, Path], tmp_path: Path
) -> None:
    """The check above can fail: the Keras reference backend does import TensorFlow."""
    records = tmp_path / "in.jsonl"
    records.write_text(json.dumps({"key": "a", "value": {"features": [0.1, 0.2, 0.3]}}) + "\n")
    argv = ["replay", "--model", str(saved_models["user"]), "--input", str(records)]
    result = probe([*argv, "--output", str(tmp_path / "o.jsonl"), "--backend", "keras-batched"])
    assert result["code"] == 0 and "tensorflow" in result["heavy"]  # type: ignore[operator]


@pytest.fixture
def without_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a serving install: neither keras nor tensorflow can be found."""
    import importlib.util  # noqa: PLC0415

    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in ("keras", "tensorflow") else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.usefixtures("without_keras")
def test_a_keras_backend_without_keras_names_the_extra(saved_models: dict[str, Path]) -> None:
    from consumer.model import ModelError, load_step_function  # noqa: PLC0415

    with pytest.raises(ModelError, match=r"keras-batched backend.*\[keras\]"):
        load_step_function(saved_models["user"], "keras-batched")
    assert load_step_function(saved_models["user"], "numpy").n_features == 3


@pytest.mark.usefixtures("without_keras")
def test_train_without_keras_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from consumer.commands import train  # noqa: PLC0415

    assert train.main(["--output", str(tmp_path / "m.keras")]) == 1
    assert "[keras]" in capsys.readouterr().err
