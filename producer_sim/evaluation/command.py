"""`python -m producer_sim evaluate`: the outputs of a simulated run scored against its labels.

Reads the output topic from the beginning with `isolation.level=read_committed` (outside any
consumer group, committing nothing) until every labelled sequence has its probability at its
labelled length, or `--timeout` passes, or nothing new arrives for `--idle-timeout` seconds. Then
writes report.json and report.png into `--report-dir` and prints the key figures. Exit status:
0 when every labelled sequence was complete, 1 when the report covers only part of them, 2 for
invalid arguments, an unreadable labels file or a missing topic.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    TopicPartition,
)

from consumer.codecs.outputs import decode_output
from consumer.config import kafka_passthrough
from producer_sim.evaluation.report import summary_lines, write_report
from producer_sim.evaluation.scores import Evaluation, OutputJoin
from producer_sim.labels import LabelsError, read_labels

StopReason = Literal["complete", "timeout", "no_progress"]


@dataclass(frozen=True)
class EvaluateSettings:
    labels: Path
    bootstrap_servers: str = "127.0.0.1:9092"
    output_topic: str = "probabilities"
    report_dir: Path = Path("reports")
    timeout_s: float = 600.0
    idle_timeout_s: float = 30.0
    trajectories: int = 4


@dataclass(frozen=True)
class ReadResult:
    stop: StopReason
    records: int  # everything read from the topic
    malformed: int  # values that are not output records
    seconds: float


class TopicMissingError(Exception):
    pass


def read_outputs(
    settings: EvaluateSettings,
    join: OutputJoin,
    on_progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> ReadResult:
    common, consumer_only, _ = kafka_passthrough(os.environ)
    consumer = Consumer(
        {
            **common,
            **consumer_only,
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"producer-sim-evaluate-{uuid.uuid4().hex[:12]}",  # never joined
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        meta = consumer.list_topics(settings.output_topic, timeout=15).topics
        topic = meta.get(settings.output_topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise TopicMissingError(f"topic {settings.output_topic!r} does not exist")
        consumer.assign(
            [TopicPartition(settings.output_topic, p, OFFSET_BEGINNING) for p in topic.partitions]
        )
        return _consume(consumer, settings, join, on_progress, clock)
    finally:
        consumer.close()


def _consume(
    consumer: Consumer,
    settings: EvaluateSettings,
    join: OutputJoin,
    on_progress: Callable[[str], None],
    clock: Callable[[], float],
) -> ReadResult:
    started = clock()
    last_progress = started
    last_report = started
    records = malformed = 0
    stop: StopReason = "complete"
    while join.complete < join.labelled:
        now = clock()
        if now - started >= settings.timeout_s:
            stop = "timeout"
            break
        if now - last_progress >= settings.idle_timeout_s:
            stop = "no_progress"
            break
        if now - last_report >= 5.0:
            last_report = now
            on_progress(f"read {records:,} outputs; {join.complete:,}/{join.labelled:,} complete")
        before = join.complete
        for msg in consumer.consume(5000, 0.5):
            if msg.error() is not None:
                continue  # partition EOF and transient errors: librdkafka retries by itself
            value = msg.value()
            records += 1
            try:
                out = decode_output(value) if value is not None else None
            except ValueError:
                out = None
            if out is None:
                malformed += 1
                continue
            kind, produced_ms = msg.timestamp()
            join.add(out, None if kind == TIMESTAMP_NOT_AVAILABLE else produced_ms)
        if join.complete > before:
            last_progress = clock()
    return ReadResult(stop, records, malformed, clock() - started)


def evaluate(
    settings: EvaluateSettings, on_progress: Callable[[str], None]
) -> tuple[Evaluation, ReadResult, Path, Path]:
    """Reads, scores and writes the report. Raises LabelsError, TopicMissingError."""
    labels = read_labels(settings.labels)
    if not labels:
        raise LabelsError(f"{settings.labels}: no labels")
    join = OutputJoin(labels)
    result = read_outputs(settings, join, on_progress)
    ev = join.evaluate(settings.trajectories)
    source: dict[str, object] = {
        "labels": str(settings.labels),
        "output_topic": settings.output_topic,
        "bootstrap_servers": settings.bootstrap_servers,
        "stopped": result.stop,
        "records_read": result.records,
        "malformed_records": result.malformed,
        "read_seconds": round(result.seconds, 3),
    }
    json_path, png_path = write_report(ev, source, settings.report_dir)
    return ev, result, json_path, png_path


def parser() -> argparse.ArgumentParser:
    d = EvaluateSettings(labels=Path())
    p = argparse.ArgumentParser(
        prog="python -m producer_sim evaluate",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("--labels", required=True, type=Path, help="labels file of the simulator")
    p.add_argument(
        "--bootstrap-servers", help=f"[env KAFKA_BOOTSTRAP_SERVERS; default {d.bootstrap_servers}]"
    )
    p.add_argument("--output-topic", help=f"[env OUTPUT_TOPIC; default {d.output_topic}]")
    p.add_argument("--report-dir", type=Path, default=d.report_dir, help="default %(default)s")
    p.add_argument(
        "--timeout", type=float, default=d.timeout_s, help="seconds; default %(default)s"
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=d.idle_timeout_s,
        help="stop after this many seconds without a newly complete sequence; default %(default)s",
    )
    p.add_argument(
        "--trajectories",
        type=int,
        default=d.trajectories,
        help="sequences of each label drawn in the figure; default %(default)s",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.timeout <= 0 or args.idle_timeout <= 0 or args.trajectories < 0:
        print("error: timeouts must be > 0 and --trajectories >= 0", file=sys.stderr)
        return 2
    settings = EvaluateSettings(
        labels=args.labels,
        bootstrap_servers=args.bootstrap_servers
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or EvaluateSettings.bootstrap_servers,
        output_topic=args.output_topic
        or os.environ.get("OUTPUT_TOPIC")
        or EvaluateSettings.output_topic,
        report_dir=args.report_dir,
        timeout_s=args.timeout,
        idle_timeout_s=args.idle_timeout,
        trajectories=args.trajectories,
    )
    try:
        ev, result, json_path, png_path = evaluate(
            settings, lambda text: print(text, file=sys.stderr)
        )
    except (LabelsError, OSError, TopicMissingError, KafkaException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(ev):
        print(line)
    print(f"stopped: {result.stop}; report: {json_path}, figure: {png_path}")
    return 0 if ev.all_complete else 1
