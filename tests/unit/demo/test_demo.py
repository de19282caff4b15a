"""The demo's parts that need no broker: metrics reading, the live view, settings, and the
handling of child processes and signals."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from producer_sim.cluster import processes
from producer_sim.cluster.ports import port_free
from producer_sim.demo.command import settings_from
from producer_sim.demo.settings import DemoSettings
from producer_sim.demo.view import LiveView, WorkerReading, combined, parse_metrics
from producer_sim.simulator.progress import Snapshot

METRICS = """\
# HELP lstm_scorer_samples_consumed_total Input samples applied to a state.
# TYPE lstm_scorer_samples_consumed_total counter
lstm_scorer_samples_consumed_total 1200.0
# TYPE lstm_scorer_records_consumed_total counter
lstm_scorer_records_consumed_total 1000.0
# TYPE lstm_scorer_outputs_produced_total counter
lstm_scorer_outputs_produced_total 1300.0
# TYPE lstm_scorer_active_sequences gauge
lstm_scorer_active_sequences 42.0
# TYPE lstm_scorer_consumer_lag_records gauge
lstm_scorer_consumer_lag_records{partition="0",topic="in"} 5.0
lstm_scorer_consumer_lag_records{partition="1",topic="in"} 7.0
# TYPE lstm_scorer_dlq_records_total counter
lstm_scorer_dlq_records_total{reason="invalid_json"} 2.0
lstm_scorer_dlq_records_total{reason="too_large"} 1.0
# TYPE lstm_scorer_batches_total counter
lstm_scorer_batches_total 17.0
"""


def test_metrics_are_summed_over_their_series() -> None:
    r = parse_metrics(METRICS)
    assert (r.up, r.records, r.samples, r.outputs) == (True, 1000, 1200, 1300)
    assert (r.active, r.lag, r.dlq) == (42, 12, 3)


def test_a_rollout_shows_sequences_per_model_version() -> None:
    text = (
        "# TYPE lstm_scorer_model_sequences gauge\n"
        'lstm_scorer_model_sequences{model_version="aaaa1111bbbb"} 30\n'
        'lstm_scorer_model_sequences{model_version="cccc2222dddd"} 12\n'
    )
    total = combined([parse_metrics(text), parse_metrics(text)])
    assert total.versions == {"aaaa1111bbbb": 60, "cccc2222dddd": 24}
    lines = LiveView(io.StringIO(), is_tty=False).lines("sending", 1.0, None, [total])
    assert lines[-1] == "sequences by model version: aaaa1111 60, cccc2222 24"
    one = parse_metrics(text.rsplit("lstm_scorer_model_sequences", 1)[0])
    assert not any("by model version" in line for line in LiveView(io.StringIO(), False).lines(
        "sending", 1.0, None, [one]))  # fmt: skip


def test_workers_that_are_down_count_for_nothing() -> None:
    total = combined([parse_metrics(METRICS), WorkerReading(up=False), parse_metrics(METRICS)])
    assert (total.up, total.samples, total.lag) == (True, 2400, 24)
    assert not combined([WorkerReading(up=False)]).up


def test_live_view_rates_come_from_successive_readings() -> None:
    view = LiveView(io.StringIO(), is_tty=False)
    sim = Snapshot(10.0, 20_000, 22_000, 5, 0, 3)
    view.lines("sending", 100.0, sim, [WorkerReading(True, samples=1000, outputs=1100)])
    lines = view.lines("sending", 102.0, sim, [WorkerReading(True, samples=5000, outputs=5300)])
    assert "20,000 records sent" in lines[0]
    assert "samples in 2,000/s, probabilities out 2,100/s" in lines[1]
    # A restarted worker's counters fall back to zero: no negative rate.
    lines = view.lines("sending", 103.0, sim, [WorkerReading(True, samples=10, outputs=10)])
    assert "samples in 0/s" in lines[1]


def test_live_view_redraws_in_place_on_a_terminal_and_logs_plain_lines_otherwise() -> None:
    tty = io.StringIO()
    view = LiveView(tty, is_tty=True)
    for t in range(3):
        view.show("sending", float(t), None, [WorkerReading(True)])
    assert tty.getvalue().count("\x1b[3F") == 2  # back over the 3 lines, after the first draw
    plain = io.StringIO()
    view = LiveView(plain, is_tty=False)
    for t in range(11):
        view.show("sending", float(t), None, [WorkerReading(True)])
    assert plain.getvalue().count("\n") == 3  # at 0, 5 and 10 s
    assert "\x1b" not in plain.getvalue()


def test_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SECONDS", "30")
    monkeypatch.setenv("DEMO_RATE", "500")
    s = settings_from(["--rate", "700", "--name", "x"])
    assert (s.seconds, s.rate, s.name) == (30.0, 700.0, "x")
    assert s.topics == ("x.samples", "x.probabilities", "x.samples.dlq", "x-scorer-state-changelog")
    assert DemoSettings(metrics_port=8001).ports == [8001, 8002]
    with pytest.raises(ValueError):
        DemoSettings(seconds=0)


def test_port_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_free(sock.getsockname()[1])


def test_signals_in_a_deferred_block_arrive_after_it() -> None:
    got: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: got.append("handler"))
    try:
        with processes.signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            got.append("block done")
        assert got == ["block done", "handler"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_children_of_a_deferred_block_still_see_sigterm(tmp_path: Path) -> None:
    log = (tmp_path / "child.log").open("wb")
    with processes.signals_deferred():
        child = processes.start(
            [sys.executable, "-c", "import time; time.sleep(60)"], env={}, cwd=tmp_path, log=log
        )
    assert processes.stop([child], 30.0) == [-signal.SIGTERM]
    log.close()


def test_stop_kills_what_ignores_sigterm() -> None:
    code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    child = subprocess.Popen(
        [sys.executable, "-c", code + "; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"  # the handler is in place
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert processes.stop([child, sleeper], 1.0) == [-signal.SIGKILL, -signal.SIGTERM]
    child.stdout.close()


def test_run_returns_the_exit_code_and_output(tmp_path: Path) -> None:
    code, out = processes.run(
        [sys.executable, "-c", "print('hello'); raise SystemExit(3)"],
        env={},
        cwd=tmp_path,
        capture=True,
    )
    assert (code, out) == (3, "hello\n")


def test_a_rollout_comes_while_the_simulator_sends() -> None:
    from producer_sim.demo.command import settings_from  # noqa: PLC0415

    s = settings_from(["--rollout-after-s", "30"])
    assert s.rollout_after_s == 30 and s.second_model.name == "reference-v2.keras"
    with pytest.raises(ValueError, match="rollout"):
        settings_from(["--seconds", "20", "--rollout-after-s", "30"])
