"""`python -m consumer create-topics --input-partitions N`: every topic a group of workers
needs, created where missing, with the settings `run` takes (flags or environment): the input
topic with N partitions, then the output, dead-letter and (compacted, as many partitions as the
input) changelog topics exactly as `run --create-topics` makes them, checked the same way.
For a deployment's one-shot job (the Helm chart's); exit 0 when every topic is there, 2 for
settings, 3 for Kafka."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace

from consumer.config import ConfigError, add_run_arguments, settings_from_args
from consumer.kafka_clients import StartupError, create_input_topic, prepare_topics
from consumer.logging_setup import configure_logging, log_event

log = logging.getLogger("consumer")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer create-topics",
        description="Create the topics a group of workers needs where they are missing.",
    )
    parser.add_argument(
        "--input-partitions",
        type=int,
        required=True,
        help="partitions of the input topic if it is created: the most workers that can share "
        "the work (an existing input topic keeps its count)",
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.input_partitions < 1:
        print("error: --input-partitions must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = replace(settings_from_args(args, os.environ), create_topics=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        created = create_input_topic(settings, args.input_partitions)
        topology = prepare_topics(settings)
    except StartupError as exc:
        log_event(log, "topics_failed", level=logging.ERROR, error=str(exc))
        return 3
    log_event(log, "topics_ready", input_topic=settings.input_topic, input_created=created,
              input_partitions=topology.input_partitions,
              topics=[settings.output_topic, settings.dlq_topic, settings.changelog_topic,
                      *([settings.shadow_topic] if settings.shadow_topic else [])])  # fmt: skip
    return 0
