"""The simulator, the evaluation and the demo against a real broker and real workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Message

from consumer.codecs.inputs import InputRecord, decode_input
from producer_sim.cluster import REPO
from producer_sim.cluster.env import TF_DEFAULTS, child_env
from producer_sim.cluster.ports import free_port_pair
from producer_sim.cluster.processes import wait_for
from producer_sim.cluster.worker import Worker
from producer_sim.evaluation.command import EvaluateSettings, read_outputs
from producer_sim.evaluation.scores import OutputJoin
from producer_sim.labels import read_labels
from producer_sim.simulator.faults import FAULTS, Fault
from producer_sim.simulator.progress import Progress
from producer_sim.simulator.sender import Sender
from producer_sim.simulator.settings import SimSettings
from producer_sim.simulator.workload import WorkloadSettings
from tests.kafka_harness import NewTopicFactory, consume_until, reader
from tests.service_harness import save_user_model

PARTITIONS = 3


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_user_model(tmp_path_factory.mktemp("model") / "user.keras", seed=5)


def kafka_env(bootstrap: str) -> dict[str, str]:
    """The children's environment, pointed at the test broker."""
    return child_env({**TF_DEFAULTS, "KAFKA_BOOTSTRAP_SERVERS": bootstrap})


def test_every_fault_reaches_the_dlq_with_its_reason_and_good_sequences_are_scored(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    unique_group: Callable[[], str],
    model: Path,
    tmp_path: Path,
) -> None:
    input_topic, output_topic, dlq_topic = new_topic(PARTITIONS), new_topic(3), new_topic(1)
    worker = Worker(
        [
            "--bootstrap-servers", kafka_bootstrap,
            "--input-topic", input_topic,
            "--output-topic", output_topic,
            "--dlq-topic", dlq_topic,
            "--group-id", unique_group(),
            "--model", str(model),
            "--create-topics",
            "--metrics-addr", "127.0.0.1",
            "--commit-interval-ms", "200",
        ],
        tmp_path / "worker.log",
        kafka_env(kafka_bootstrap),
    ).start()  # fmt: skip
    try:
        labels = tmp_path / "labels.jsonl"
        settings = SimSettings(
            WorkloadSettings(seed=3, devices=20, bad_ratio=0.05, duplicate_ratio=0.05),
            bootstrap_servers=kafka_bootstrap,
            input_topic=input_topic,
            rate=0,
            count=800,
            labels_out=labels,
            progress="none",
        )
        totals = Sender(settings, Progress("none", sys.stderr, 1.0)).run(threading.Event())
        assert totals.all_delivered and totals.records == 800
        assert totals.faults >= len(FAULTS)  # the corpus cycled through at least once

        dlq = reader(kafka_bootstrap, dlq_topic, 1)
        try:
            msgs = consume_until(dlq, lambda got: len(got) >= totals.faults, 90)
        finally:
            dlq.close()
        assert len(msgs) == totals.faults
        got: Counter[str] = Counter()
        for m in msgs:
            headers = _headers(m)
            fault = _fault_of(m.key(), m.value())
            assert headers["error"].decode() == fault.reason, fault.name
            assert headers["source_topic"].decode() == input_topic
            got[fault.name] += 1
        assert set(got) == {f.name for f in FAULTS}

        # The good records around the faults are all scored, to each sequence's last step.
        join = OutputJoin(read_labels(labels))
        eval_settings = EvaluateSettings(
            labels=labels, bootstrap_servers=kafka_bootstrap, output_topic=output_topic
        )
        result = read_outputs(eval_settings, join, lambda _: None)
        assert result.stop == "complete"
        assert join.complete == join.labelled > 0
        assert worker.metric("lstm_scorer_dlq_records_total") == totals.faults
    finally:
        assert worker.terminate() == 0


def _headers(msg: Message) -> dict[str, bytes]:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: v for k, v in pairs if isinstance(v, bytes)}


def _fault_of(key: bytes | None, value: bytes | None) -> Fault:
    """The corpus case a dead-lettered record was sent as (value faults go under fault-<n>)."""
    for fault in FAULTS:
        if fault.fixed_key:
            same_key = key == fault.key
        else:
            same_key = key is not None and key.startswith(b"fault-")
        if fault.value == value and same_key:
            return fault
    raise AssertionError(f"not a fault of the corpus: {key!r}")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_stops_the_simulator_which_flushes_everything_it_sent(
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
) -> None:
    topic = new_topic(PARTITIONS)
    labels = tmp_path / "labels.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "producer_sim", "simulate",
            "--input-topic", topic,
            "--rate", "5000",
            "--devices", "50",
            "--labels-out", str(labels),
            "--progress", "none",
        ],
        cwd=REPO,
        env=kafka_env(kafka_bootstrap),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # Sending for a while: many complete sequences are in the labels file.
        wait_for(
            lambda: (labels.exists() and labels.read_bytes().count(b"\n") >= 200) or None,
            60,
            "labels",
        )
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == code, text
    assert f"stopped by {sig.name}" in text
    assert "delivery errors: 0, undelivered: 0" in text
    match = re.search(r"sent ([\d,]+) records \(([\d,]+) samples", text)
    assert match is not None, text
    records, samples = (int(g.replace(",", "")) for g in match.groups())

    consumer = reader(kafka_bootstrap, topic, PARTITIONS, "read_uncommitted")
    try:
        msgs = consume_until(consumer, lambda got: len(got) >= records, 60)
    finally:
        consumer.close()
    assert len(msgs) == records  # every record handed to the producer reached the topic
    per_key: Counter[str] = Counter()
    for m in msgs:
        decoded = decode_input(m.key(), m.value(), n_features=3, partition=0, offset=0)
        assert isinstance(decoded, InputRecord)
        per_key[decoded.key] += len(decoded.features)
    written = read_labels(labels)
    assert {item.key: item.length for item in written} == dict(per_key)
    assert sum(per_key.values()) == samples
    assert any(item.cut_short for item in written)  # sequences cut short are labelled too


def test_an_interrupted_demo_stops_every_process_it_started(
    kafka_bootstrap: str, model: Path, tmp_path: Path
) -> None:
    port = free_port_pair(18301)
    name = f"demo-test-{os.getpid()}"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "producer_sim", "demo",
            "--model", str(model),
            "--name", name,
            "--seconds", "120",
            "--rate", "500",
            "--metrics-port", str(port),
            "--run-dir", str(tmp_path / "run"),
            "--report-dir", str(tmp_path / "reports"),
        ],
        cwd=REPO,
        env=kafka_env(kafka_bootstrap),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )  # fmt: skip
    lines: list[str] = []
    sending = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))
            if "simulator started" in lines[-1]:
                sending.set()

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    try:
        assert sending.wait(150), "".join(lines)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at the terminal does
        assert proc.wait(90) == 130, "".join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reading.join(10)
    output = "".join(lines)
    pids = [int(p) for p in re.findall(r"worker \d started \(pid (\d+)", output)]
    assert len(pids) == 2, output
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "workers stopped (exit 0, 0)" in output  # SIGTERM, not SIGKILL
