"""`python -m producer_sim simulate`: devices sending labelled sequences to the input topic.

Runs until `--count` records or `--duration` seconds (whichever comes first; neither: until
stopped). A stop by signal ends the sending, writes the labels of sequences cut short, flushes
the producer (up to `--flush-timeout`) and prints the totals. Exit status:

    0    finished, or stopped by SIGTERM, with every record delivered
    130  stopped by SIGINT (Ctrl-C), with every record delivered
    1    some record failed delivery or was still undelivered at the flush timeout
    2    invalid settings

A second Ctrl-C during the flush gives up waiting and exits 130 at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from consumer.config import ConfigError
from producer_sim.simulator.progress import Progress, Style
from producer_sim.simulator.sender import Sender, Totals
from producer_sim.simulator.settings import SimSettings, add_arguments, settings_from_args

EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m producer_sim simulate",
        description=(
            "Send interleaved labelled sequences of 3-feature samples to the input topic at a "
            "target rate: N devices, each one sequence after another under keys "
            "<prefix>-<device>-<n>, the label in the header `label`."
        ),
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return p


def progress_style(settings: SimSettings, is_tty: bool) -> Style:
    if settings.progress == "auto":
        return "line" if is_tty else "plain"
    return settings.progress


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_from_args(args, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    style = progress_style(settings, sys.stderr.isatty())
    sender = Sender(settings, Progress(style, sys.stderr, settings.progress_interval_s))
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        # A second Ctrl-C should not wait for the flush: back to the default (KeyboardInterrupt).
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        totals = sender.run(stop)
    except KeyboardInterrupt:
        print("\ninterrupted again: stopped without waiting for deliveries", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        print(f"stopped by {signal.Signals(received[0]).name}", file=sys.stderr)
    print(totals.describe(), file=sys.stderr)
    return exit_status(totals, received)


def exit_status(totals: Totals, signals: list[int]) -> int:
    """The exit status for the module docstring's table."""
    if not totals.all_delivered:
        return 1
    return EXIT_INTERRUPTED if signal.SIGINT in signals else 0
