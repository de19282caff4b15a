"""`python -m producer_sim demo` (what `make demo` runs): the whole pipeline on this machine.

1. A broker: KAFKA_BOOTSTRAP_SERVERS if set; else the local one (deploy/kafka/local-kafka.sh),
   started if it is not running, and then stopped at the end.
2. The model: trained (`python -m consumer train`) if the file is missing (with a rollout, a
   second version too, with another seed).
3. Topics `<name>.samples` (6 partitions), `<name>.probabilities`, `<name>.samples.dlq` and the
   changelog of group `<name>-scorer`: the previous demo's are deleted first.
4. Two workers, `python -m consumer run`, metrics on ports 8001 and 8002, logs in
   `.run/demo/worker-N.log`.
5. The simulator for DEMO_SECONDS at DEMO_RATE records/s, with a live view of the workers'
   /metrics; then the wait for the consumer lag to drain.
   With --rollout-after-s N, the workers serve a model store (both versions, `current` on the
   first) and, N seconds in, `current` moves to the second version and the workers get SIGHUP:
   running sequences finish on the first version while new ones start on the second.
6. The evaluation: report.json and report.png in `reports/`, key figures printed.
7. Everything started is stopped: workers with SIGTERM, the broker if the demo started it.
   Ctrl-C (or SIGTERM) at any point does the same and exits 130.

Exit status: 0 when every labelled sequence was scored and every record delivered, 1 when not,
2 when a step failed (broker, model, topics, workers), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from producer_sim.cluster.ports import port_free
from producer_sim.demo.run import DemoError, DemoRun
from producer_sim.demo.settings import DemoSettings

EXIT_INTERRUPTED = 130


def _env_default(name: str, fallback: str) -> str:
    return os.environ.get(name) or fallback


def parser() -> argparse.ArgumentParser:
    d = DemoSettings()
    p = argparse.ArgumentParser(
        prog="python -m producer_sim demo",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def option(
        flag: str, env: str, default: object, text: str, kind: Callable[[str], object]
    ) -> None:
        p.add_argument(
            flag,
            type=kind,
            default=kind(_env_default(env, str(default))),
            help=f"{text} [env {env}; default {default}]",
        )

    option("--seconds", "DEMO_SECONDS", d.seconds, "how long the simulator sends", float)
    option("--rate", "DEMO_RATE", d.rate, "records per second sent", float)
    option("--devices", "DEMO_DEVICES", d.devices, "concurrent sequences", int)
    option("--model", "DEMO_MODEL", d.model, "model file, trained if missing", Path)
    option("--name", "DEMO_NAME", d.name, "prefix of the demo's topics and group", str)
    option("--metrics-port", "DEMO_METRICS_PORT", d.metrics_port, "first worker's port", int)
    option("--run-dir", "DEMO_RUN_DIR", d.run_dir, "logs and labels", Path)
    option("--report-dir", "DEMO_REPORT_DIR", d.report_dir, "report.json, report.png", Path)
    rollout = "roll out a second model version (SIGHUP) this far into sending; 0: none"
    option("--rollout-after-s", "DEMO_ROLLOUT_AFTER_S", d.rollout_after_s, rollout, float)
    return p


def settings_from(argv: list[str]) -> DemoSettings:
    args = parser().parse_args(argv)
    return DemoSettings(
        seconds=args.seconds,
        rate=args.rate,
        devices=args.devices,
        model=args.model,
        name=args.name,
        metrics_port=args.metrics_port,
        run_dir=args.run_dir,
        report_dir=args.report_dir,
        rollout_after_s=args.rollout_after_s,
    )


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    try:
        settings = settings_from(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # SIGTERM and a closed terminal end the demo as Ctrl-C does: through the cleanup. SIGINT
    # too, even where it was ignored at start (a background job), so `kill -INT` always works.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    run = DemoRun(settings, sys.stdout, port_free=port_free, clock=time.monotonic)
    code = 1
    try:
        code = run.run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what the demo started", flush=True)
        code = EXIT_INTERRUPTED
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", flush=True)
        code = 2
    finally:
        # Cleanup runs to its end: a second Ctrl-C must not leave workers or the broker behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            run.cleanup()
        finally:
            signal.signal(signal.SIGINT, previous)
    return code
