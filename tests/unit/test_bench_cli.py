"""`python -m bench` on a tiny engine-only plan: options, the JSON files, failures recorded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import engine_bench, plans
from bench.report import HEADLINE_KEYS

TINY = replace(
    plans.QUICK,
    engine=engine_bench.EnginePlan(
        key_counts=(300, 100_000),  # the headline is at 100,000 keys
        batches=(1, 256),
        keras_batched=(8,),
        budget_s=0.01,
        baseline_samples=10,
        baseline_keys=100_000,
    ),
)


def test_options() -> None:
    args = cli.parse(["--quick", "--only", "engine", "--only", "restore"])
    assert args.quick and args.only == ["engine", "restore"]
    defaults = cli.parse([])
    assert defaults.only is None and not defaults.quick
    assert defaults.eos_commit_interval_ms == 100
    assert cli.parse(["--eos-commit-interval-ms", "250"]).eos_commit_interval_ms == 250
    with pytest.raises(SystemExit):
        cli.parse(["--only", "everything"])


def test_guard_records_a_failed_section_and_goes_on() -> None:
    guard = cli.Guard()
    assert guard("ok", lambda: 3) == 3

    def broken() -> int:
        raise RuntimeError("no broker")

    assert guard("broken", broken) is None
    assert guard.errors == {"broken": "RuntimeError: no broker"}


def test_an_engine_only_run_writes_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(plans, "QUICK", TINY)
    results = tmp_path / "results"
    code = cli.main(
        ["--quick", "--only", "engine", "--results-dir", str(results), "--workdir", str(tmp_path)]
    )
    assert code == 0
    doc = json.loads((results / "latest.json").read_text())
    assert set(HEADLINE_KEYS) <= set(doc)
    assert doc["meta"]["mode"] == "quick" and doc["meta"]["sections"] == ["engine"]
    assert doc["meta"]["errors"] == {}
    # Engine figures are measured; the broker sections did not run.
    assert doc["engine_samples_per_s"] > 0
    assert doc["engine_speedup_vs_stateful_batch1"] > 1
    assert doc["engine_speedup_vs_padded_window"] > 1
    assert doc["bytes_per_sequence"] > 0
    assert doc["e2e_samples_per_s_alo"] is None and doc["restore_keys_per_s"] is None
    approaches = {(c["approach"], c["keys"], c["batch"]) for c in doc["engine"]["cases"]}
    assert approaches == {
        ("numpy", 300, 1),
        ("numpy", 300, 256),
        ("numpy", 100_000, 1),
        ("numpy", 100_000, 256),
        ("keras-batched", 100_000, 8),
        ("keras-stateful", 100_000, 1),
        ("padded-window", 100_000, 1),
    }
    assert doc["engine"]["memory"]["keys"] == 100_000
    assert "engine_samples_per_s" in capsys.readouterr().out
