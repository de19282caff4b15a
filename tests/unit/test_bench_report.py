"""The benchmark result: statistics, headline figures, goals, the JSON files and the table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import latency, report, table
from bench.e2e import Startup, Throughput
from bench.engine_bench import EngineCase, EngineResults, TableMemory
from bench.failover import FailoverResult
from bench.latency import LatencyPoint
from bench.restore_bench import RestoreResult
from bench.scaling import ScalingPoint
from bench.stats import percentiles, sustained_rate


def test_sustained_rate_leaves_out_a_slow_start_and_a_tail() -> None:
    start = np.linspace(0, 5_000, 50)  # 50 records over the first 5 s (start-up)
    steady = 5_000 + np.arange(1_000)  # then 1,000 records per second for 1 s
    tail = 6_000 + np.linspace(0, 3_000, 60)
    rate = sustained_rate(np.concatenate([tail, steady, start]))  # order does not matter
    assert 900 < rate.per_s < 1_100
    with pytest.raises(ValueError):
        sustained_rate([1.0])


def test_percentiles() -> None:
    p = percentiles(np.arange(1, 101, dtype=float))
    assert (p.count, p.p50_ms, p.max_ms) == (100, 50.5, 100.0)
    assert 98 < p.p99_ms < 100


def test_live_capacity_counts_the_outputs_produced_within_the_window() -> None:
    # 1,000 outputs a second for 10 s from t = 0, then a backlog's burst after the window.
    stamps = [i * 1.0 for i in range(10_000)] + [20_000.0] * 5_000
    assert latency.live_capacity(stamps, 2_000.0, 8_000.0) == pytest.approx(1_000.0)
    assert latency.live_capacity(stamps, 0.0, 30_000.0) == pytest.approx(500.0)
    with pytest.raises(ValueError, match="empty window"):
        latency.live_capacity(stamps, 5.0, 5.0)


def _latency(guarantee: str, fraction: float, p99: float) -> LatencyPoint:
    return LatencyPoint(
        guarantee,  # type: ignore[arg-type]
        100,
        fraction,
        1000.0,
        10,
        10,
        8,
        1.0,
        2.0,
        p99,
        p99,
        1.0,
        p99,
        0.0,
        100.0,
        20.0,
        2000.0,
        4000.0,
    )


def full_sections() -> report.Sections:
    cases = (
        EngineCase("numpy", 100_000, 256, 4_000, 0.002, 0.002, 16),  # 2,000,000/s
        EngineCase("numpy", 100_000, 4096, 4_096, 0.004096, 0.004, 1),  # 1,000,000/s
        EngineCase("numpy", 100_000, 16, 16, 0.001, 0.001, 1),  # outside the headline batches
        EngineCase("numpy", 1_000, 1024, 1024, 0.0001, 0.0001, 1),  # other key count
        EngineCase("keras-stateful", 100_000, 1, 100, 0.1, 0.1, 100),  # 1,000/s
        EngineCase("padded-window", 100_000, 1, 100, 0.05, 0.05, 100),  # 2,000/s
    )
    memory = TableMemory(1_000_000, 500_000_000, 650_000_000, 1 << 20)
    return report.Sections(
        engine=EngineResults(cases, memory),
        startup=Startup(3.0, 4.0, 700 << 20),
        throughput=(
            Throughput("kcat", "at-least-once", 1000, 10, 200_000.0, 1.0),
            Throughput("passthrough", "at-least-once", 1000, 10, 100_000.0, 1.0),
            Throughput("service", "at-least-once", 1000, 10, 50_000.0, 1.0),
            Throughput("passthrough", "exactly-once", 100, 10, 80_000.0, 1.0),
            Throughput("service", "exactly-once", 100, 10, 60_000.0, 1.0),
            Throughput("quix", "at-least-once", 1000, 10, 4_000.0, 1.0),
            Throughput("quix", "exactly-once", 100, 10, 10_000.0, 1.0),
        ),
        latency=(
            _latency("at-least-once", 0.25, 10.0),
            _latency("at-least-once", 0.5, 40.0),
            _latency("at-least-once", 0.75, 55.0),
            _latency("exactly-once", 0.5, 300.0),
        ),
        restore=RestoreResult(1000, 2, 400, 1.0, 0.004, 250_000.0, 1000, 1 << 30),
        scaling=(ScalingPoint(1, 10, 5.0, 2.0, 10),),
        failover=(
            FailoverResult("exactly-once", 1000, 6000, (1,), 6.5, 0.5, 500, 12.0, 12.1),
            FailoverResult("at-least-once", 1000, 6000, (0, 2), 6.4, 0.5, 500, 7.5, 7.6),
        ),
    )


def test_headline_figures_from_the_sections() -> None:
    h = report.headline(full_sections())
    assert list(h) == list(report.HEADLINE_KEYS)
    assert h["engine_samples_per_s"] == pytest.approx(1_000_000)  # the slowest of 256..4096
    assert h["engine_speedup_vs_stateful_batch1"] == pytest.approx(1_000)
    assert h["engine_speedup_vs_padded_window"] == pytest.approx(500)
    assert h["bytes_per_sequence"] == pytest.approx(650)  # the larger of nbytes and RSS
    assert h["e2e_ratio_vs_passthrough_alo"] == pytest.approx(0.5)
    assert h["e2e_ratio_vs_passthrough_eos"] == pytest.approx(0.75)
    assert h["kcat_samples_per_s"] == 200_000.0  # kcat runs at-least-once only: both ratios use it
    assert h["e2e_ratio_vs_kcat_alo"] == pytest.approx(0.25)
    assert h["e2e_ratio_vs_kcat_eos"] == pytest.approx(0.3)
    assert (h["quix_samples_per_s_alo"], h["quix_samples_per_s_eos"]) == (4_000.0, 10_000.0)
    assert h["e2e_ratio_vs_quix_alo"] == pytest.approx(12.5)  # each guarantee against its own
    assert h["e2e_ratio_vs_quix_eos"] == pytest.approx(6.0)
    assert (h["p99_ms_at_50pct_alo"], h["p99_ms_at_50pct_eos"]) == (40.0, 300.0)
    assert h["restore_keys_per_s"] == 250_000.0
    assert h["p99_ms_at_75pct_alo"] == 55.0
    assert h["failover_s_alo"] == 7.5  # each guarantee its own, whatever the order
    assert h["failover_s_eos"] == 12.0
    met = {k: v["met"] for k, v in report.goals(h).items()}
    assert met == {
        "engine_samples_per_s": True,
        "engine_speedup_vs_stateful_batch1": True,
        "bytes_per_sequence": False,
        "e2e_ratio_vs_passthrough_alo": False,
        "e2e_ratio_vs_passthrough_eos": True,
        "e2e_ratio_vs_kcat_alo": False,
        "e2e_ratio_vs_kcat_eos": False,
        "e2e_ratio_vs_quix_alo": True,
        "e2e_ratio_vs_quix_eos": False,
        "p99_ms_at_50pct_alo": True,
        "p99_ms_at_50pct_eos": False,
        "p99_ms_at_75pct_alo": False,  # 55 ms against at most 50
        "restore_keys_per_s": False,  # 250,000 against at least 300,000
        "failover_s_alo": True,  # 7.5 s against at most 10
        "failover_s_eos": False,  # 12 s: the broker's abort of the dead worker's transaction
    }


def test_a_run_without_sections_has_every_key_as_null(tmp_path: Path) -> None:
    doc = report.document(report.Sections(), {"mode": "quick"})
    assert all(doc[k] is None for k in report.HEADLINE_KEYS)
    assert all(g["met"] is None for g in doc["goals"].values())
    assert table.render(doc).count("\n") >= len(report.HEADLINE_KEYS)


def test_written_files_hold_the_same_document(tmp_path: Path) -> None:
    doc = report.document(full_sections(), {"mode": "full", "nan": math.nan})
    path = report.write(doc, tmp_path / "results", "20260101T000000")
    assert path.name == "20260101T000000.json"
    latest = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert json.loads(path.read_text()) == latest
    assert latest["engine_samples_per_s"] == pytest.approx(1_000_000)
    assert latest["meta"]["nan"] is None  # JSON has no NaN
    case = latest["engine"]["cases"][0]
    assert case["samples_per_s"] == pytest.approx(2_000_000)  # derived figures are written too
    assert latest["e2e"]["throughput"][2]["kind"] == "service"
    rendered = table.render(latest)
    for key in report.HEADLINE_KEYS:
        assert key in rendered
    assert "MISSED" in rendered and "keras-stateful" in rendered and "restore" in rendered
    assert "moved partition 7.50 s after the SIGKILL" in rendered
