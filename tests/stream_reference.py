"""The stream semantics of the design, one record at a time, one key at a time, and random
streams that exercise them. Tests compare the batched engine with this."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from consumer.messages import InputRecord


@dataclass(frozen=True)
class Expected:
    key: str
    step: int
    prefix: tuple[tuple[float, ...], ...]  # the samples of the sequence so far
    reason: str | None
    offset: int


def reference(records: list[InputRecord], max_steps: int = 0) -> tuple[list[Expected], set[str]]:
    """Every output the records must produce, and the keys left with state."""
    prefixes: dict[str, list[tuple[float, ...]]] = {}
    out: list[Expected] = []
    for rec in records:
        prefix = prefixes.setdefault(rec.key, [])
        if rec.reset:
            prefix.clear()
        for row in rec.features:
            prefix.append(tuple(row))
            reason = "max_steps" if max_steps and len(prefix) == max_steps else None
            out.append(Expected(rec.key, len(prefix), tuple(prefix), reason, rec.offset))
            if reason:
                prefix.clear()
        if rec.end and prefix:
            if rec.features:
                last = out[-1]
                out[-1] = Expected(last.key, last.step, last.prefix, "end", last.offset)
            else:
                out.append(Expected(rec.key, len(prefix), tuple(prefix), "end", rec.offset))
            prefix.clear()
    return out, {k for k, p in prefixes.items() if p}


def record(
    key: str,
    offset: int,
    features: list[list[float]],
    *,
    end: bool = False,
    reset: bool = False,
    partition: int = 0,
) -> InputRecord:
    return InputRecord(key, features, end, reset, None, partition, offset)


@st.composite
def streams(
    draw: st.DrawFn,
    n_features: int = 3,
    values: st.SearchStrategy[float] | None = None,
    keys: int = 8,
    max_records: int = 60,
) -> list[InputRecord]:
    """Interleaved records of a few keys: chunks, single samples, end markers, resets."""
    # Small integers by default: float32 sums of them are exact.
    value = values if values is not None else st.integers(-5, 5).map(float)
    row = st.lists(value, min_size=n_features, max_size=n_features)
    spec = st.tuples(
        st.integers(0, keys - 1),
        st.lists(row, min_size=0, max_size=4),
        st.booleans(),
        st.integers(0, 9).map(lambda v: v == 0),
    )
    records = []
    for offset, (key, rows, end, reset) in enumerate(
        draw(st.lists(spec, min_size=1, max_size=max_records))
    ):
        samples = rows if rows or end else [[1.0] * n_features]
        records.append(record(f"k{key}", offset, samples, end=end, reset=reset))
    return records
