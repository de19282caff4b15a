"""Outputs as columns, and the count of what was lost, repeated or wrong between two of them.

A scenario compares millions of outputs (the full overload reads 4.6 million): as Python objects
in dicts, the oracle's and the topic's copies took over 10 GB. As columns they take about 40 bytes
an output, and the comparison is a sort instead of a dict per output.

An output is known by its ident (key, partition, offset, step, final); its value is its reason and
its outputs (probabilities, as float64 read from the JSON).
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from consumer.codecs.outputs import OutputRecord, decode_output

TOLERANCE = 1e-5
Ident = tuple[str, int, int, int, bool]  # key, partition, offset, step, final
Ints = npt.NDArray[np.int64]


class OutputTable:
    """Outputs appended one by one (`add`, `add_value`), read as numpy columns."""

    def __init__(self) -> None:
        self._key_ids: dict[str, int] = {}
        self.key_names: list[str] = []
        self._reason_ids: dict[str | None, int] = {}
        self.reason_names: list[str | None] = []
        self._cols = {name: array("q") for name in ("key", "partition", "offset", "step")}
        self._small = {name: array("b") for name in ("final", "multi")}
        self._reason = array("h")
        self._start = array("q")
        self._width = array("h")
        self._values = array("d")

    @classmethod
    def of(cls, outputs: Iterable[OutputRecord]) -> OutputTable:
        table = cls()
        for out in outputs:
            table.add(out)
        return table

    def __len__(self) -> int:
        return len(self._reason)

    def add_value(self, value: bytes) -> None:
        self.add(decode_output(value))

    def add(
        self, out: OutputRecord, partition: int | None = None, offset: int | None = None
    ) -> None:
        """`partition`/`offset`: the input position, when `out` does not carry the real one."""
        partition = out.partition if partition is None else partition
        offset = out.offset if offset is None else offset
        assert partition is not None and offset is not None
        key = self._key_ids.setdefault(out.sequence_id, len(self._key_ids))
        if key == len(self.key_names):
            self.key_names.append(out.sequence_id)
        reason = self._reason_ids.setdefault(out.reason, len(self._reason_ids))
        if reason == len(self.reason_names):
            self.reason_names.append(out.reason)
        self._cols["key"].append(key)
        self._cols["partition"].append(partition)
        self._cols["offset"].append(offset)
        self._cols["step"].append(out.step)
        self._small["final"].append(out.final)
        self._small["multi"].append(out.probabilities is not None)
        self._reason.append(reason)
        self._start.append(len(self._values))
        self._width.append(len(out.outputs))
        self._values.extend(out.outputs)

    def column(self, name: str) -> Ints:
        others = {"reason": self._reason, "start": self._start, "width": self._width}
        source = {**self._cols, **self._small, **others}[name]
        return np.asarray(source, dtype=np.int64)

    def values(self) -> npt.NDArray[np.float64]:
        return np.frombuffer(self._values, dtype=np.float64) if self._values else np.zeros(0)

    def record(self, i: int) -> OutputRecord:
        """Row `i` as an output record (for messages and small scenarios)."""
        start, width = self._start[i], self._width[i]
        outputs = tuple(self._values[start : start + width])
        multi = bool(self._small["multi"][i])
        return OutputRecord(
            sequence_id=self.key_names[self._cols["key"][i]],
            step=self._cols["step"][i],
            probability=None if multi else outputs[0],
            probabilities=outputs if multi else None,
            final=bool(self._small["final"][i]),
            reason=self.reason_names[self._reason[i]],  # type: ignore[arg-type]
            model_version="",
            partition=self._cols["partition"][i],
            offset=self._cols["offset"][i],
            ts=None,
        )

    def items(self) -> Iterator[tuple[Ident, OutputRecord]]:
        for i in range(len(self)):
            out = self.record(i)
            assert out.partition is not None and out.offset is not None
            yield (out.sequence_id, out.partition, out.offset, out.step, out.final), out

    def as_dict(self) -> dict[Ident, OutputRecord]:
        return dict(self.items())

    @classmethod
    def from_dict(cls, outputs: Mapping[Ident, OutputRecord]) -> OutputTable:
        """From outputs keyed by ident; the ident wins over the record's own fields."""
        table = cls()
        for (key, partition, offset, step, final), out in outputs.items():
            table.add(
                dataclasses.replace(
                    out,
                    sequence_id=key,
                    partition=partition,
                    offset=offset,
                    step=step,
                    final=final,
                )
            )
        return table


@dataclass(frozen=True)
class Tally:
    outputs_expected: int
    outputs_out: int  # records read from the output topic, repeats included
    lost: int
    duplicated: int
    wrong: int
    repeats_differing: int  # repeats not bit-identical to their first copy
    problems: tuple[str, ...]  # the first few, for a failure message


def _idents(table: OutputTable, keys: Ints) -> list[Ints]:
    """The ident columns, least significant first (lexsort's order)."""
    names = ("final", "step", "offset", "partition")
    return [table.column(n) for n in names] + [keys]


def _runs(cols: list[Ints], order: Ints) -> npt.NDArray[np.bool_]:
    """For rows in `order`: whether each starts a new ident."""
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        same = np.ones(len(order) - 1, dtype=bool)
        for col in cols:
            s = col[order]
            same &= s[1:] == s[:-1]
        new[1:] = ~same
    return new


def _payload_equal(
    a: OutputTable, ia: Ints, b: OutputTable, ib: Ints, tolerance: float | None
) -> npt.NDArray[np.bool_]:
    """Whether rows ia of a and ib of b have the same reason and outputs: bit for bit when
    `tolerance` is None, else within it."""
    reasons_a = np.array(a.reason_names, dtype=object)[a.column("reason")[ia]]
    reasons_b = np.array(b.reason_names, dtype=object)[b.column("reason")[ib]]
    equal: npt.NDArray[np.bool_] = reasons_a == reasons_b
    wa, wb = a.column("width")[ia], b.column("width")[ib]
    equal &= wa == wb
    va, vb = a.values(), b.values()
    sa, sb = a.column("start")[ia], b.column("start")[ib]
    for k in range(int(max(wa.max(initial=0), wb.max(initial=0)))):
        has = equal & (wa > k)
        x, y = va[sa[has] + k], vb[sb[has] + k]
        if tolerance is None:
            ok = x.view(np.int64) == y.view(np.int64)
        else:
            ok = np.abs(x - y) <= tolerance
        equal[np.flatnonzero(has)[~ok]] = False
    return equal


def tally(expected: OutputTable, got: OutputTable) -> Tally:
    """Lost, duplicated, wrong and differing repeats of `got` against `expected`."""
    problems: list[str] = []
    # One key space for both tables.
    ids = {name: i for i, name in enumerate(expected.key_names)}
    for name in got.key_names:
        ids.setdefault(name, len(ids))
    exp_keys = expected.column("key")
    got_keys = np.array([ids[n] for n in got.key_names], dtype=np.int64)[got.column("key")]

    # Repeats: a stable sort by ident keeps read order within an ident, so a run's first row is
    # the first copy read.
    got_cols = _idents(got, got_keys) if len(got) else []
    order = np.lexsort(got_cols) if len(got) else np.zeros(0, dtype=np.int64)
    starts = _runs(got_cols, order) if len(got) else np.zeros(0, dtype=bool)
    first_of = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
    repeats = order[~starts]
    repeat_firsts = first_of[~starts]
    differ = ~_payload_equal(got, repeats, got, repeat_firsts, None)
    for r, f in list(zip(repeats[differ], repeat_firsts[differ], strict=True))[:10]:
        problems.append(f"a repeat is not bit-identical: {got.record(r)} vs {got.record(f)}")
    firsts = order[starts]

    # Expected against first copies: both unique by ident, so a run has one row of each or one.
    exp_cols = _idents(expected, exp_keys)
    first_cols = [c[firsts] for c in got_cols] if len(got) else [np.zeros(0, np.int64)] * 5
    both = [np.concatenate([e, f]) for e, f in zip(exp_cols, first_cols, strict=True)]
    source = np.concatenate([np.zeros(len(expected), np.int64), np.ones(len(firsts), np.int64)])
    merged = np.lexsort([source, *both]) if len(source) else np.zeros(0, dtype=np.int64)
    new = _runs(both, merged)
    paired = np.flatnonzero(~new)  # the got row of a pair; the expected row is just before it
    exp_rows, got_rows = merged[paired - 1], firsts[merged[paired] - len(expected)]
    assert (source[merged[paired - 1]] == 0).all() and (source[merged[paired]] == 1).all(), (
        "an ident is twice in the expected outputs"
    )
    matched_exp = np.zeros(len(expected), dtype=bool)
    matched_exp[exp_rows] = True
    matched_got = np.zeros(len(got), dtype=bool)
    matched_got[got_rows] = True
    lost_rows = np.flatnonzero(~matched_exp)
    unexpected = firsts[~matched_got[firsts]]
    ok = _payload_equal(got, got_rows, expected, exp_rows, TOLERANCE)
    for i in lost_rows[:10]:
        problems.append(f"lost: {expected.record(i)}")
    for g, e in list(zip(got_rows[~ok], exp_rows[~ok], strict=True))[:10]:
        problems.append(f"wrong: got {got.record(g)}, expected {expected.record(e)}")
    for g in unexpected[:10]:
        problems.append(f"unexpected: {got.record(g)}")
    return Tally(
        outputs_expected=len(expected),
        outputs_out=len(got),
        lost=len(lost_rows),
        duplicated=len(repeats),
        wrong=int((~ok).sum()) + len(unexpected),
        repeats_differing=int(differ.sum()),
        problems=tuple(problems[:10]),
    )
