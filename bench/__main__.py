"""`python -m bench`: the benchmarks, side by side, with a JSON result and a printed table.

    python -m bench [--quick] [--only engine|e2e|restore|failover|scaling ...] [--model PATH]
                    [--bootstrap-servers HOST:PORT] [--eos-commit-interval-ms N]
                    [--results-dir DIR] [--workdir DIR]

Sections: `engine` (no broker), `e2e` (worker start-up, throughput against the passthrough,
latency), `restore`, `failover` and `scaling` (a broker: a local one is started, and stopped at
the end, unless --bootstrap-servers names one). Results go to <results-dir>/<timestamp>.json and
latest.json. A section that fails is recorded under meta.errors and the others still run; the
exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import broker, engine_bench, plans, report, table
from bench.machine import describe_machine
from bench.service import ALO_COMMIT_INTERVAL_MS, EOS_COMMIT_INTERVAL_MS, Cluster

SECTIONS = ("engine", "e2e", "restore", "failover", "scaling")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset, in at most 5 minutes")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run this section (repeatable)"
    )
    parser.add_argument("--model", type=Path, help="model file (default: random weights)")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of a local one")
    parser.add_argument(
        "--eos-commit-interval-ms",
        type=int,
        default=EOS_COMMIT_INTERVAL_MS,
        help="the service's --commit-interval-ms in exactly-once runs (default %(default)s)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--workdir", type=Path, help="logs and broker data (default: temporary)")
    return parser.parse_args(argv)


@contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
    else:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            yield Path(tmp)


class Guard:
    """Runs one section; a failure is recorded, not raised, so the other sections still run."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def __call__(self, name: str, section: Callable[[], T]) -> T | None:
        try:
            return section()
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            say(f"{name} failed:\n{traceback.format_exc()}")
            return None


def _broker(args: argparse.Namespace, workdir: Path) -> AbstractContextManager[str]:
    if args.bootstrap_servers:
        return nullcontext(str(args.bootstrap_servers))
    return broker.local_broker(workdir / "kafka")


def run(args: argparse.Namespace) -> int:
    plan = plans.QUICK if args.quick else plans.FULL
    wanted = tuple(dict.fromkeys(args.only)) if args.only else plan.sections
    stamp = time.strftime("%Y%m%dT%H%M%S")
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "quick" if args.quick else "full",
        "sections": list(wanted),
        "plan": report.plain(plan),
        "machine": describe_machine(),
        "model": str(args.model) if args.model else "user architecture, random weights",
        "commit_interval_ms": {
            "at-least-once": ALO_COMMIT_INTERVAL_MS,
            "exactly-once": args.eos_commit_interval_ms,
        },
    }
    guard = Guard()
    sections = report.Sections()
    started = time.monotonic()
    with _workdir(args.workdir) as workdir:
        model = args.model or plans.default_model(workdir)
        if "engine" in wanted:
            engine = guard("engine", lambda: engine_bench.run(model, plan.engine, progress=say))
            sections = replace(sections, engine=engine)
        if any(s in wanted for s in ("e2e", "restore", "failover", "scaling")):
            with _broker(args, workdir) as bootstrap:
                say(f"broker at {bootstrap}")
                cluster = Cluster(
                    bootstrap, broker.Topics(bootstrap), workdir, model, args.eos_commit_interval_ms
                )
                try:
                    found = plans.run_broker_sections(cluster, plan, wanted, say, guard)
                finally:
                    cluster.topics.delete_all()
                    # The admin client would keep reconnecting to a stopped broker, noisily.
                    del cluster
            sections = replace(sections, **found)
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["load_average_after"] = list(os.getloadavg())
    meta["errors"] = guard.errors
    doc = report.document(sections, meta)
    path = report.write(doc, args.results_dir, stamp)
    print(table.render(doc))
    say(f"wrote {path} ({meta['seconds']:.0f} s)")
    return 1 if guard.errors else 0


def main(argv: list[str]) -> int:
    return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
