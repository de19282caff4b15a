"""The reliability scenarios' count of lost, repeated and wrong outputs, in columns, agrees with
the plain per-output reading of the same definitions."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from consumer.codecs.outputs import OutputRecord
from tests.reliability.output_table import TOLERANCE, Ident, OutputTable, Tally, tally


def out(key: str, offset: int, step: int, *values: float, final: bool = False) -> OutputRecord:
    reason = "end_of_sequence" if final else None
    multi = len(values) != 1
    return OutputRecord(
        sequence_id=key,
        step=step,
        probability=None if multi else values[0],
        probabilities=tuple(values) if multi else None,
        final=final,
        reason=reason,  # type: ignore[arg-type]
        model_version="v",
        partition=offset % 3,
        offset=offset,
        ts=None,
    )


def ident(o: OutputRecord) -> Ident:
    assert o.partition is not None and o.offset is not None
    return (o.sequence_id, o.partition, o.offset, o.step, o.final)


def reference(expected: list[OutputRecord], got: list[OutputRecord]) -> tuple[int, ...]:
    """The definitions one output at a time: (lost, duplicated, wrong, repeats differing)."""

    def bits(o: OutputRecord) -> tuple[object, ...]:
        return (o.reason, tuple(struct_bits(v) for v in o.outputs))

    def close(a: OutputRecord, b: OutputRecord) -> bool:
        return (
            a.reason == b.reason
            and len(a.outputs) == len(b.outputs)
            and all(abs(x - y) <= TOLERANCE for x, y in zip(a.outputs, b.outputs, strict=True))
        )

    want = {ident(o): o for o in expected}
    first: dict[Ident, OutputRecord] = {}
    duplicated = differing = 0
    for o in got:
        seen = first.setdefault(ident(o), o)
        if seen is not o:
            duplicated += 1
            differing += bits(seen) != bits(o)
    lost = sum(1 for i in want if i not in first)
    wrong = sum(1 for i, o in first.items() if i not in want or not close(o, want[i]))
    return lost, duplicated, wrong, differing


def struct_bits(v: float) -> bytes:
    import struct  # noqa: PLC0415

    return struct.pack("<d", v)


def counts(t: Tally) -> tuple[int, ...]:
    return t.lost, t.duplicated, t.wrong, t.repeats_differing


def test_each_kind_of_fault_is_counted_once() -> None:
    a, b, c = out("a", 1, 1, 0.5), out("b", 2, 1, 0.25), out("c", 3, 1, 0.75, final=True)
    expected = [a, b, c]
    got = [
        a,
        dataclasses.replace(a, probability=0.5),  # a repeat, bit-identical
        dataclasses.replace(b, probability=0.25 + 1e-3),  # wrong
        dataclasses.replace(b, probability=0.25 + 2e-3),  # and its repeat differs
        out("d", 4, 1, 0.1),  # unexpected
    ]  # c is lost
    t = tally(OutputTable.of(expected), OutputTable.of(got))
    assert counts(t) == (1, 2, 2, 1)
    assert (t.outputs_expected, t.outputs_out) == (3, 5)
    assert any(p.startswith("lost:") and "'c'" in p for p in t.problems)
    assert any(p.startswith("unexpected:") and "'d'" in p for p in t.problems)


def test_a_repeated_nan_is_bit_identical_and_a_different_reason_is_wrong() -> None:
    nan = out("n", 1, 1, math.nan)
    t = tally(OutputTable.of([nan]), OutputTable.of([nan, dataclasses.replace(nan)]))
    assert (t.duplicated, t.repeats_differing) == (1, 0)
    ended = out("e", 2, 3, 0.5, final=True)
    t = tally(
        OutputTable.of([ended]), OutputTable.of([dataclasses.replace(ended, reason="max_steps")])
    )
    assert counts(t) == (0, 0, 1, 0)


def test_outputs_of_several_values_are_compared_value_by_value() -> None:
    two = out("m", 1, 1, 0.1, 0.9)
    off = dataclasses.replace(two, probabilities=(0.1, 0.9 + 1e-3))
    short = dataclasses.replace(two, probabilities=(0.1, 0.9, 0.0))
    assert counts(tally(OutputTable.of([two]), OutputTable.of([two]))) == (0, 0, 0, 0)
    assert counts(tally(OutputTable.of([two]), OutputTable.of([off]))) == (0, 0, 1, 0)
    assert counts(tally(OutputTable.of([two]), OutputTable.of([short]))) == (0, 0, 1, 0)


def test_nothing_read_loses_everything_and_nothing_expected_makes_everything_unexpected() -> None:
    some = [out("a", 1, 1, 0.5), out("a", 2, 2, 0.6)]
    assert counts(tally(OutputTable.of(some), OutputTable())) == (2, 0, 0, 0)
    assert counts(tally(OutputTable(), OutputTable.of(some))) == (0, 0, 2, 0)


@pytest.mark.parametrize("seed", range(20))
def test_the_columns_agree_with_the_per_output_definitions(seed: int) -> None:
    rng = random.Random(seed)
    expected = [
        out(
            f"k{rng.randrange(30)}",
            offset,
            rng.randrange(1, 5),
            rng.random(),
            final=rng.random() < 0.2,
        )
        for offset in rng.sample(range(500), 200)
    ]
    got: list[OutputRecord] = []
    for want in expected:
        roll = rng.random()
        if roll < 0.1:
            continue  # lost
        o = want
        if roll < 0.2:
            o = dataclasses.replace(o, probability=o.outputs[0] + rng.choice([1e-6, 1e-3]))
        got.append(o)
        if rng.random() < 0.2:  # a repeat, sometimes of other bits
            shift = rng.choice([0.0, 0.0, 1e-9])
            got.append(dataclasses.replace(o, probability=o.outputs[0] + shift))
    got += [out("x", 1000 + i, 1, 0.5) for i in range(rng.randrange(3))]
    rng.shuffle(got)
    assert counts(tally(OutputTable.of(expected), OutputTable.of(got))) == reference(expected, got)


def test_a_table_reads_back_what_went_in() -> None:
    outputs = [out("a", 1, 1, 0.5), out("b", 5, 2, 0.1, 0.2, final=True)]
    table = OutputTable.of(outputs)
    back = table.as_dict()
    for o in outputs:
        r = back[ident(o)]
        assert (r.outputs, r.reason, r.probabilities is None) == (
            o.outputs,
            o.reason,
            o.probabilities is None,
        )
    assert OutputTable.from_dict(back).as_dict() == back
