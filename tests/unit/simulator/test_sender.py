"""The send loop against a fake producer on a fake clock: bounds, rate, a full queue, stops,
delivery errors, progress and the exit status."""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from producer_sim.labels import read_labels
from producer_sim.simulator.command import exit_status
from producer_sim.simulator.progress import Progress
from producer_sim.simulator.sender import ProducerLike, Sender, Totals
from producer_sim.simulator.settings import SimSettings
from producer_sim.simulator.workload import Workload, WorkloadSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProducer:
    """Holds up to `capacity` records; poll and flush deliver them and move the clock."""

    def __init__(self, config: dict[str, Any], clock: Clock, capacity: int = 100) -> None:
        self.config = config
        self.clock = clock
        self.capacity = capacity
        self.queue: list[tuple[bytes | None, bytes | None]] = []
        self.delivered: list[tuple[bytes | None, bytes | None]] = []
        self.full = 0
        self.fail_every = 0  # every n-th delivery fails
        self.stuck = False  # nothing is ever delivered
        self.on_produce: Any = None

    def produce(self, topic: str, value: Any, key: Any, headers: Any = None) -> None:
        assert topic == "in"
        if len(self.queue) >= self.capacity:
            self.full += 1
            raise BufferError("queue full")
        self.queue.append((key, value))
        if self.on_produce is not None:
            self.on_produce(len(self.delivered) + len(self.queue))

    def _deliver(self) -> int:
        if self.stuck:
            return 0
        for record in self.queue:
            self.delivered.append(record)
            if self.fail_every and len(self.delivered) % self.fail_every == 0:
                self.config["on_delivery"](KafkaError(KafkaError._MSG_TIMED_OUT), None)
        n = len(self.queue)
        self.queue.clear()
        return n

    def poll(self, timeout: float) -> int:
        self.clock.now += timeout
        return self._deliver()

    def flush(self, timeout: float) -> int:
        self.clock.now += timeout
        self._deliver()
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)


WORK = WorkloadSettings(seed=11, devices=40, chunk_ratio=0.2, bad_ratio=0.01)


def run(
    settings: SimSettings,
    stop: threading.Event | None = None,
    setup: Any = None,
    progress: Progress | None = None,
) -> tuple[Totals, FakeProducer]:
    clock = Clock()
    made: list[FakeProducer] = []

    def make(config: dict[str, Any]) -> ProducerLike:
        fake = FakeProducer(config, clock)
        if setup is not None:
            setup(fake)
        made.append(fake)
        return fake

    sender = Sender(
        settings,
        progress or Progress("none", io.StringIO(), 1.0),
        make_producer=make,
        clock=clock,
        wall_clock=lambda: 1_764_150_000.0,
    )
    totals = sender.run(stop or threading.Event())
    return totals, made[0]


def test_count_bound_sends_exactly_the_workload_through_a_full_queue() -> None:
    totals, fake = run(SimSettings(WORK, input_topic="in", rate=0, count=2500, batch=1000))
    want = [(k, v) for k, v, _ in Workload(WORK).take(2500, 1_764_150_000_000).records]
    assert fake.delivered == want  # nothing dropped or reordered by the BufferError retries
    assert fake.full > 0 and totals.buffer_waits == fake.full
    assert (totals.records, totals.undelivered, totals.delivery_errors) == (2500, 0, 0)
    assert totals.all_delivered
    assert fake.config["partitioner"] == "murmur2_random"


def test_rate_and_duration_on_the_fake_clock() -> None:
    settings = SimSettings(WORK, input_topic="in", rate=1000, duration_s=2.0, batch=64)
    totals, fake = run(settings, setup=lambda f: setattr(f, "capacity", 10**6))
    # 2 s at 1000 records/s, the bucket starting empty.
    assert 1900 <= totals.records <= 2000
    assert len(fake.delivered) == totals.records


def test_stop_ends_sending_flushes_and_writes_open_sequences(tmp_path: Path) -> None:
    stop = threading.Event()
    labels = tmp_path / "labels.jsonl"

    def stop_at_1234(fake: FakeProducer) -> None:
        fake.on_produce = lambda n: stop.set() if n == 1234 else None

    settings = SimSettings(WORK, input_topic="in", rate=0, batch=100, labels_out=labels)
    totals, fake = run(settings, stop, setup=stop_at_1234)
    assert totals.records == 1300  # the batch in hand is finished: 13 batches of 100
    assert len(fake.delivered) == 1300 and totals.undelivered == 0
    written = read_labels(labels)
    assert len(written) == totals.labels_written
    assert totals.labels_written == totals.sequences_finished + totals.sequences_open
    assert totals.sequences_open > 0
    assert sum(item.length for item in written) == totals.samples


def test_delivery_errors_are_counted_and_fail_the_run() -> None:
    totals, _ = run(
        SimSettings(WORK, input_topic="in", rate=0, count=500),
        setup=lambda f: setattr(f, "fail_every", 50),
    )
    assert totals.delivery_errors == 10
    assert totals.first_error is not None
    assert exit_status(totals, []) == 1


def test_undelivered_at_the_flush_timeout_are_reported() -> None:
    def stuck(fake: FakeProducer) -> None:
        fake.stuck = True
        fake.capacity = 10**6

    totals, _ = run(
        SimSettings(WORK, input_topic="in", rate=0, count=300, flush_timeout_s=3), setup=stuck
    )
    assert totals.undelivered == 300
    assert exit_status(totals, [int(signal.SIGTERM)]) == 1


def test_exit_status() -> None:
    clean, _ = run(SimSettings(WORK, input_topic="in", rate=0, count=10))
    assert exit_status(clean, []) == 0
    assert exit_status(clean, [int(signal.SIGTERM)]) == 0
    assert exit_status(clean, [int(signal.SIGINT)]) == 130


@pytest.mark.parametrize(("style", "marker"), [("plain", "\n"), ("line", "\r")])
def test_progress_lines(style: str, marker: str) -> None:
    stream = io.StringIO()
    progress = Progress(style, stream, 0.5)  # type: ignore[arg-type]
    run(SimSettings(WORK, input_topic="in", rate=1000, duration_s=3.0, batch=50), progress=progress)
    text = stream.getvalue()
    assert text.count(marker) >= 4
    assert "records/s" in text and "delivery errors" in text
    if style == "line":
        assert text.endswith("\n")  # closed, so the totals start on a new line
