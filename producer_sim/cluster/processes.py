"""Starting, stopping and waiting for child processes.

The demo starts its children each in a session of its own: a Ctrl-C at the terminal goes to the
whole foreground process group; children in their own sessions do not get it, so the demo alone
decides how each one stops: workers get SIGTERM and time to commit, a broker start is let finish
so that the broker can then be stopped. The benchmarks' and the tests' children stay in the
caller's session.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, TypeVar

T = TypeVar("T")


def start(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: IO[bytes] | None = None,
    own_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Starts `argv`; output to `log` (both streams), else to the caller's own."""
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=own_session,
    )


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> list[int]:
    """SIGTERM to every one, then SIGKILL to those still running after `timeout_s` (in all);
    returns their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return [proc.wait() for proc in procs]


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    finish_on_interrupt: bool = False,
    capture: bool = False,
) -> tuple[int, str]:
    """Runs `argv` to its end; returns its exit code and (with `capture`) its stdout.

    On KeyboardInterrupt the child is stopped, or with `finish_on_interrupt` let finish
    (a bounded step whose half-done state would be harder to undo), then the interrupt goes on.
    """
    proc: subprocess.Popen[bytes] | None = None
    try:
        with signals_deferred():
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else None,
                start_new_session=True,
            )
        out, _ = proc.communicate()
    except KeyboardInterrupt:
        if proc is None:
            raise
        if finish_on_interrupt:
            _wait_ignoring_interrupts(proc)
        else:
            stop([proc], 10.0)
        raise
    return proc.returncode, (out or b"").decode(errors="replace")


def _wait_ignoring_interrupts(proc: subprocess.Popen[bytes]) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds SIGINT and SIGTERM back for the block, then delivers them to the previous handlers:
    a child started inside the block is recorded before an interrupt can unwind past it.

    Python handlers, not the signal mask: children inherit a blocked mask across exec, and a
    worker that cannot see SIGTERM cannot stop cleanly.
    """
    pending: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in pending[:1]:
            signal.raise_signal(signum)


def wait_for(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)
