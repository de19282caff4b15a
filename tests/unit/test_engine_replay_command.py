"""`consumer replay` over a JSON-lines file, with the exact test step in place of a model."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumer.codecs.outputs import decode_output
from consumer.commands import replay
from tests.prefix_sum_step import PrefixSumStep


def run_replay(
    tmp_path: Path, lines: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[tuple[str, int, float]]]:
    monkeypatch.setattr(replay, "load_step_function", lambda path, backend: PrefixSumStep())
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    code = replay.main(["--model", "m.keras", "--input", str(src), "--output", str(dst)])
    outputs = [decode_output(v) for v in dst.read_bytes().splitlines()]
    return code, [(o.sequence_id, o.step, o.outputs[0]) for o in outputs]


def test_a_key_on_two_partitions_is_reported_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = {"features": [1, 1, 1]}
    code, got = run_replay(
        tmp_path,
        [
            {"key": "a", "value": sample, "partition": 2},
            {"key": "b", "value": sample},
            {"key": "a", "value": sample, "partition": 5},
            {"key": "a", "value": sample, "partition": 2},
        ],
        monkeypatch,
    )
    assert code == 0
    assert sorted(got) == [("a", 1, 3.0), ("a", 2, 6.0), ("b", 1, 3.0)]  # order across keys is free
    err = capsys.readouterr().err
    assert "line 3: wrong_partition: key's sequence is on partition 2, record on 5" in err
    assert "1 bad line(s) skipped" in err


def test_a_partition_that_is_not_a_number_is_a_bad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line: dict[str, object] = {"key": "a", "value": {"features": [1, 1, 1]}, "partition": "x"}
    assert run_replay(tmp_path, [line], monkeypatch) == (0, [])
    assert "line 1: invalid_field: partition" in capsys.readouterr().err
