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

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Message

from consumer.commands import replay
from consumer.messages import (
    DEFAULT_MAX_VALUE_BYTES,
    InputRecord,
    OutputRecord,
    decode_input,
    decode_output,
)
from tests.keras_oracle import MaxSteps
from tests.keras_oracle import expected_outputs as keras_outputs

TOLERANCE = 1e-5
N_FEATURES = 3
Position = tuple[int, int]  # input (partition, offset)
Ident = tuple[str, int, int, int, bool]  # key, partition, offset, step, final


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
    outputs: dict[Ident, OutputRecord]
    bad: dict[Position, str]  # bad input record -> the DLQ reason it must get
    records: int
    samples: int
    replay: dict[Ident, OutputRecord] | None = None  # the consistency check, when Keras leads


@dataclass(frozen=True)
class Tally:
    outputs_expected: int
    outputs_out: int  # records read from the output topic, repeats included
    lost: int
    duplicated: int
    wrong: int
    repeats_differing: int  # repeats not bit-identical to their first copy
    problems: tuple[str, ...]  # the first few, for a failure message


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
    sent: Sequence[Sent],
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
    `wrong_partition`), with that reason."""
    ordered = sorted(sent, key=lambda s: (s.partition, s.offset))
    good: list[tuple[InputRecord, Sent]] = []
    bad: dict[Position, str] = {}
    for s in ordered:
        item = decode_input(
            s.key,
            s.value,
            n_features=N_FEATURES,
            partition=s.partition,
            offset=s.offset,
            max_value_bytes=max_value_bytes,
        )
        if exclude and (s.partition, s.offset) in exclude:
            bad[(s.partition, s.offset)] = exclude[(s.partition, s.offset)]
        elif isinstance(item, InputRecord):
            good.append((item, s))
        else:
            bad[(s.partition, s.offset)] = item.reason
    samples = sum(len(rec.features) for rec, _ in good)
    outputs: dict[Ident, OutputRecord] = {}
    replayed: dict[Ident, OutputRecord] | None = None
    if model is not None and good:
        assert workdir is not None
        fixed = max_steps if isinstance(max_steps, int) and not idle_finals else None
        if keras:
            records = [rec for rec, _ in good]
            outputs = keras_outputs(model, records, max_steps=max_steps, idle_finals=idle_finals)
            if fixed is not None:
                replayed = _replay(model, good, workdir, fixed)
        else:
            assert fixed is not None, "only the Keras oracle knows changing limits and idle finals"
            outputs = _replay(model, good, workdir, fixed)
    return Expected(outputs, bad, len(sent), samples, replayed)


def _replay(
    model: Path, good: list[tuple[InputRecord, Sent]], workdir: Path, max_steps: int = 0
) -> dict[Ident, OutputRecord]:
    src, dst = workdir / "oracle-in.jsonl", workdir / "oracle-out.jsonl"
    where: list[Position] = []
    with src.open("wb") as f:
        for rec, s in good:
            assert s.value is not None
            f.write(orjson.dumps({"key": rec.key, "value": orjson.loads(s.value)}) + b"\n")
            where.append((s.partition, s.offset))
    argv = ["--model", str(model), "--input", str(src), "--output", str(dst), "--batch", "4096"]
    argv += ["--max-steps", str(max_steps)]
    assert replay.main(argv) == 0
    outputs: dict[Ident, OutputRecord] = {}
    for line in dst.read_bytes().splitlines():
        out = decode_output(line)
        assert out.offset is not None  # replay's offset is the input line number
        partition, offset = where[out.offset - 1]
        outputs[(out.sequence_id, partition, offset, out.step, out.final)] = out
    return outputs


def ident(out: OutputRecord) -> Ident:
    assert out.partition is not None and out.offset is not None
    return (out.sequence_id, out.partition, out.offset, out.step, out.final)


def same(a: OutputRecord, b: OutputRecord) -> bool:
    if a.reason != b.reason or len(a.outputs) != len(b.outputs):
        return False
    return all(abs(x - y) <= TOLERANCE for x, y in zip(a.outputs, b.outputs, strict=True))


def tally(expected: dict[Ident, OutputRecord], got: Iterable[OutputRecord]) -> Tally:
    first: dict[Ident, OutputRecord] = {}
    read = duplicated = wrong = differing = 0
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < 10:
            problems.append(text)

    for out in got:
        read += 1
        i = ident(out)
        seen = first.get(i)
        if seen is None:
            first[i] = out
            continue
        duplicated += 1
        # At-least-once repeats the same computation: its JSON values must be the same numbers.
        if seen.outputs != out.outputs or seen.reason != out.reason:
            differing += 1
            problem(f"a repeat is not bit-identical: {out} vs {seen}")
    lost = 0
    for i, want in expected.items():
        have = first.get(i)
        if have is None:
            lost += 1
            problem(f"lost: {want} at {i}")
        elif not same(have, want):
            wrong += 1
            problem(f"wrong: got {have}, expected {want}")
    for i, have in first.items():
        if i not in expected:
            wrong += 1
            problem(f"unexpected: {have}")
    return Tally(len(expected), read, lost, duplicated, wrong, differing, tuple(problems))


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
