"""The labels file: one JSON object per line and sequence,
`{"key", "label", "length", "ended", "cut_short"}`.

`length` is the number of samples the consumer receives for the key (a duplicated send counts
twice: the consumer applies it twice), `ended` whether an end marker was sent. A line is written
once every record of the sequence was handed to the producer, or at shutdown, with `cut_short`,
for a sequence the end of the run interrupted: its `length` is what was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson


@dataclass(frozen=True, slots=True)
class SequenceLabel:
    key: str
    label: int  # 0 or 1
    length: int  # samples sent, >= 1
    ended: bool
    cut_short: bool = False


class LabelsError(ValueError):
    """A labels file line that is not a valid label."""


def encode_label(item: SequenceLabel) -> bytes:
    return orjson.dumps(
        {
            "key": item.key,
            "label": item.label,
            "length": item.length,
            "ended": item.ended,
            "cut_short": item.cut_short,
        }
    )


def decode_label(line: bytes) -> SequenceLabel:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LabelsError(f"not JSON: {exc.msg}") from None
    if type(doc) is not dict:
        raise LabelsError("not a JSON object")
    key, label, length = doc.get("key"), doc.get("label"), doc.get("length")
    ended = doc.get("ended", True)
    cut_short = doc.get("cut_short", False)
    if type(key) is not str or not key:
        raise LabelsError("key must be a non-empty string")
    if label not in (0, 1) or type(label) is not int:
        raise LabelsError("label must be 0 or 1")
    if type(length) is not int or length < 1:
        raise LabelsError("length must be an integer >= 1")
    if type(ended) is not bool or type(cut_short) is not bool:
        raise LabelsError("ended and cut_short must be true or false")
    return SequenceLabel(key, label, length, ended, cut_short)


def read_labels(path: Path) -> list[SequenceLabel]:
    """Every label in the file; raises LabelsError naming the line of the first bad one."""
    labels: list[SequenceLabel] = []
    seen: set[str] = set()
    with path.open("rb") as src:
        for lineno, line in enumerate(src, start=1):
            if not line.strip():
                continue
            try:
                item = decode_label(line)
            except LabelsError as exc:
                raise LabelsError(f"{path}:{lineno}: {exc}") from None
            if item.key in seen:
                raise LabelsError(f"{path}:{lineno}: key {item.key!r} appears twice")
            seen.add(item.key)
            labels.append(item)
    return labels


class LabelWriter:
    """Appends label lines to a file (or nowhere, when no path is given)."""

    def __init__(self, path: Path | None) -> None:
        self._file: BinaryIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("wb")
        self.written = 0

    def write(self, items: Iterable[SequenceLabel]) -> None:
        if self._file is None:
            return
        for item in items:
            self._file.write(encode_label(item) + b"\n")
            self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
