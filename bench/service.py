"""What the broker runs share: the broker and model in use, and how a worker or the passthrough is
started on a set of topics with one delivery guarantee."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.broker import Topics, unique
from bench.processes import Worker
from producer_sim.cluster.child import Child

Guarantee = Literal["at-least-once", "exactly-once"]
# At-least-once runs use the service's default. Exactly-once outputs become visible when their
# transaction commits, so the interval is the latency floor downstream: it is shortened for
# exactly-once runs (`--eos-commit-interval-ms`), and every result states the one it ran with.
ALO_COMMIT_INTERVAL_MS = 1000
EOS_COMMIT_INTERVAL_MS = 100


@dataclass(frozen=True)
class Cluster:
    bootstrap: str
    topics: Topics
    workdir: Path
    model: Path
    eos_commit_interval_ms: int = EOS_COMMIT_INTERVAL_MS

    def commit_interval_ms(self, guarantee: Guarantee) -> int:
        if guarantee == "exactly-once":
            return self.eos_commit_interval_ms
        return ALO_COMMIT_INTERVAL_MS


@dataclass(frozen=True)
class Pipeline:
    """One consumer group and its topics (the changelog topic is named after the group)."""

    input: str
    output: str
    dlq: str
    group: str
    guarantee: Guarantee

    @property
    def changelog(self) -> str:
        return f"{self.group}-state-changelog"


def pipeline(
    cluster: Cluster,
    input_topic: str,
    guarantee: Guarantee,
    partitions: int,
    output_config: Mapping[str, str] | None = None,
) -> Pipeline:
    """A new group reading `input_topic`, with its output, dead-letter and changelog topics.

    The topics are created here, each with a leader for every partition, rather than by the
    worker's `--create-topics`: a worker that restores from a changelog it has just created can
    ask for offsets before the partitions have a leader, and fail.
    """
    p = Pipeline(input_topic, unique("out"), unique("dlq"), unique("group"), guarantee)
    cluster.topics.create_named(p.output, partitions, output_config)
    cluster.topics.create_named(p.dlq, 1)
    cluster.topics.create_named(p.changelog, partitions, {"cleanup.policy": "compact"})
    return p


def run_flags(cluster: Cluster, p: Pipeline, instance: str) -> list[str]:
    return [
        "--bootstrap-servers", cluster.bootstrap,
        "--input-topic", p.input,
        "--output-topic", p.output,
        "--dlq-topic", p.dlq,
        "--group-id", p.group,
        "--guarantee", p.guarantee,
        "--commit-interval-ms", str(cluster.commit_interval_ms(p.guarantee)),
        "--instance-id", instance,
    ]  # fmt: skip


def worker(cluster: Cluster, p: Pipeline, instance: str = "w0") -> Worker:
    """A service worker on the pipeline (not started)."""
    flags = [*run_flags(cluster, p, instance), "--model", str(cluster.model)]
    return Worker.service(flags, cluster.workdir / f"{p.group}-{instance}.log")


def passthrough(cluster: Cluster, p: Pipeline) -> Child:
    """The passthrough on the pipeline (not started)."""
    argv = ["-m", "bench.passthrough", *run_flags(cluster, p, "passthrough")]
    return Child(argv, cluster.workdir / f"{p.group}-passthrough.log")
