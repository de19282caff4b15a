"""What a scenario expects and what it got, counted the same way for every scenario.

An input record is known by where it lies in the input topic (partition, offset), so the oracles
and the live service can be matched output by output: an output is identified by (key, partition,
offset, step, final). Two oracles, both on the good records in topic order: Keras on every prefix
(`tests.keras_oracle`, independent of the engine; the reference when asked for) and the replay
command (the same engine without Kafka; a consistency check). Counted:

- lost: an expected output that never reached the output topic;
- duplicated: an output read more than once (at-least-once redelivery);
- wrong: an output whose probability differs by more than 1e-5 or whose reason differs, or an
  output the oracle does not have (a wrong step, an extra final);
- repeats differing: a repeat whose values are not bit for bit those of its first copy;
- DLQ: every bad record must be on the dead-letter topic once per delivery, with its reason.
"""

from __future__ import annotations

import subprocess
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson
from confluent_kafka import Message

from bench.processes import REPO
from consumer.codecs.inputs import DEFAULT_MAX_VALUE_BYTES, InputRecord, Rejection, decode_input
from consumer.codecs.outputs import OutputRecord, decode_output
from tests.keras_oracle import MaxSteps
from tests.keras_oracle import expected_outputs as keras_outputs
from tests.reliability.output_table import TOLERANCE, Ident, OutputTable, Tally, tally

__all__ = ["Ident", "Tally", "tally"]

N_FEATURES = 3
Position = tuple[int, int]  # input (partition, offset)


@dataclass(frozen=True, slots=True)
class Sent:
    """One input record as it lies in the input topic."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


def as_sent(msg: Message) -> Sent:
    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None
    return Sent(msg.key(), msg.value(), partition, offset)


@dataclass(frozen=True)
class Expected:
    outputs: OutputTable
    bad: dict[Position, str]  # bad input record -> the DLQ reason it must get
    records: int
    samples: int
    replay: OutputTable | None = None  # the consistency check, when Keras leads


@dataclass(frozen=True)
class DlqTally:
    records: int  # read from the dead-letter topic, repeats included
    reasons: dict[str, int]  # distinct bad input records by `error` header
    missing: int  # bad input records not on the dead-letter topic
    misfiled: int  # good records on it, or bad ones with another reason
    problems: tuple[str, ...]


def classify(sent: Sequence[Sent], max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> Expected:
    """Decode every record as the service does: good ones for the oracle, bad ones for the DLQ."""
    return expect(sent, None, max_value_bytes)


def expect(
    sent: Iterable[Sent],
    model: Path | None,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    workdir: Path | None = None,
    *,
    keras: bool = False,
    max_steps: MaxSteps | int = 0,
    idle_finals: bool = False,
    exclude: Mapping[Position, str] | None = None,
) -> Expected:
    """The oracle's outputs for the good records (when `model` is given) and the bad records.

    `keras`: the outputs are Keras's on every prefix, and replay's are kept as a check (replay
    only knows one fixed max_steps and no idle finals, so it is skipped when they are asked for).
    `exclude`: records the service must dead-letter for a reason the decoder cannot see (such as
    `wrong_partition`), with that reason.

    Without Keras nothing per record is kept but its place: the good records go straight to the
    replay command's input file (the full overload scenario checks four million)."""
    oracle_in = None
    if model is not None:
        assert workdir is not None
        oracle_in = (workdir / "oracle-in.jsonl").open("wb")
    try:
        bad, records, where, samples, good = _classify(
            sent, max_value_bytes, exclude, oracle_in, keep=keras
        )
    finally:
        if oracle_in is not None:
            oracle_in.close()
    outputs = OutputTable()
    replayed: OutputTable | None = None
    if model is not None and good:
        assert workdir is not None
        fixed = max_steps if isinstance(max_steps, int) and not idle_finals else None
        if keras:
            by_ident = keras_outputs(model, records, max_steps=max_steps, idle_finals=idle_finals)
            outputs = OutputTable.from_dict(by_ident)
            if fixed is not None:
                replayed = _replay(model, where, workdir, fixed)
        else:
            assert fixed is not None, "only the Keras oracle knows changing limits and idle finals"
            outputs = _replay(model, where, workdir, fixed)
    return Expected(outputs, bad, good + len(bad), samples, replayed)


_Classified = tuple[dict[Position, str], list[InputRecord], "_Places", int, int]


def _classify(
    sent: Iterable[Sent],
    max_value_bytes: int,
    exclude: Mapping[Position, str] | None,
    oracle_in: BinaryIO | None,
    *,
    keep: bool,
) -> _Classified:
    """Decode every record in topic order: (bad records with their reasons, the good records if
    `keep`, the good records' places, samples, good records). Good ones go to `oracle_in`."""
    bad: dict[Position, str] = {}
    records: list[InputRecord] = []
    where = _Places()
    samples = good = 0
    for s in sorted(sent, key=lambda s: (s.partition, s.offset)):
        at = (s.partition, s.offset)
        item = decode_input(
            s.key,
            s.value,
            n_features=N_FEATURES,
            partition=s.partition,
            offset=s.offset,
            max_value_bytes=max_value_bytes,
        )
        if exclude and at in exclude:
            bad[at] = exclude[at]
        elif isinstance(item, Rejection):
            bad[at] = item.reason
        else:
            good += 1
            samples += len(item.features)
            if oracle_in is not None:
                assert s.value is not None
                line = {"key": item.key, "value": orjson.loads(s.value)}
                oracle_in.write(orjson.dumps(line) + b"\n")
                where.add(at)
            if keep:
                records.append(item)
    return bad, records, where, samples, good


class _Places:
    """Input positions by line of the replay command's input, as two columns."""

    def __init__(self) -> None:
        self.partitions = array("q")
        self.offsets = array("q")

    def add(self, at: Position) -> None:
        self.partitions.append(at[0])
        self.offsets.append(at[1])


def _replay(model: Path, where: _Places, workdir: Path, max_steps: int = 0) -> OutputTable:
    """The replay command, in a process of its own, on the good records in topic order."""
    src, dst = workdir / "oracle-in.jsonl", workdir / "oracle-out.jsonl"
    argv = [sys.executable, "-m", "consumer", "replay", "--model", str(model)]
    argv += ["--input", str(src), "--output", str(dst), "--batch", "4096"]
    argv += ["--max-steps", str(max_steps)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    outputs = OutputTable()
    with dst.open("rb") as lines:
        for line in lines:
            out = decode_output(line)
            assert out.offset is not None  # replay's offset is the input line number
            i = out.offset - 1
            outputs.add(out, partition=where.partitions[i], offset=where.offsets[i])
    return outputs


def same(a: OutputRecord, b: OutputRecord) -> bool:
    if a.reason != b.reason or len(a.outputs) != len(b.outputs):
        return False
    return all(abs(x - y) <= TOLERANCE for x, y in zip(a.outputs, b.outputs, strict=True))


def outputs_of(msgs: Iterable[Message]) -> list[OutputRecord]:
    return [decode_output(v) for v in (m.value() for m in msgs) if v is not None]


def byte_headers(msg: Message) -> dict[str, bytes]:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: v for k, v in pairs if isinstance(v, bytes)}


def dlq_tally(bad: dict[Position, str], msgs: Sequence[Message], source_topic: str) -> DlqTally:
    found: dict[Position, str] = {}
    misfiled = 0
    problems: list[str] = []
    for m in msgs:
        headers = byte_headers(m)
        where = (int(headers["source_partition"]), int(headers["source_offset"]))
        reason = headers["error"].decode()
        if headers["source_topic"].decode() != source_topic or not headers.get("error_detail"):
            misfiled += 1
            problems.append(f"incomplete headers at {where}: {headers}")
        found.setdefault(where, reason)
        if bad.get(where) != reason:
            misfiled += 1
            problems.append(f"{where}: DLQ reason {reason}, expected {bad.get(where)}")
    missing = [where for where in bad if where not in found]
    problems.extend(f"not on the DLQ: {where} ({bad[where]})" for where in missing[:5])
    reasons = Counter(found.values())
    return DlqTally(
        len(msgs), dict(sorted(reasons.items())), len(missing), misfiled, tuple(problems[:10])
    )
