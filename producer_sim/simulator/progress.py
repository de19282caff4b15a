"""The simulator's progress on stderr: one line rewritten in place on a terminal, or a plain line
every few seconds in a log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TextIO

Style = Literal["line", "plain", "none"]
_LINE_EVERY_S = 0.5


@dataclass(frozen=True)
class Snapshot:
    elapsed_s: float
    records: int
    samples: int
    faults: int
    delivery_errors: int
    queued: int  # records in the producer not yet delivered


def describe(s: Snapshot, rate: float) -> str:
    faults = f", {s.faults:,} malformed" if s.faults else ""
    return (
        f"sent {s.records:,} records ({s.samples:,} samples{faults}) in {s.elapsed_s:.1f} s, "
        f"{rate:,.0f} records/s, {s.queued:,} queued, {s.delivery_errors:,} delivery errors"
    )


class Progress:
    def __init__(self, style: Style, stream: TextIO, interval_s: float) -> None:
        self.style = style
        self._stream = stream
        self._interval_s = _LINE_EVERY_S if style == "line" else interval_s
        self._last_at = 0.0
        self._last_records = 0
        self._width = 0

    def due(self, elapsed_s: float) -> bool:
        return self.style != "none" and elapsed_s - self._last_at >= self._interval_s

    def show(self, s: Snapshot) -> None:
        """Shows the rate since the previous display."""
        span = s.elapsed_s - self._last_at
        rate = (s.records - self._last_records) / span if span > 0 else 0.0
        self._last_at, self._last_records = s.elapsed_s, s.records
        self._write(describe(s, rate))

    def _write(self, text: str) -> None:
        if self.style == "line":
            # Pad over the previous line's leftovers; \r returns to its start.
            self._stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif self.style == "plain":
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Ends the live line so what follows starts on a line of its own."""
        if self.style == "line" and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0
