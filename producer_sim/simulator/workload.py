"""The simulated stream, without Kafka: which device sends what, in which order.

N devices each send one sequence after another; a sequence's key is `<prefix>-<device>-<n>`
(its n-th sequence), so successive sequences of a device are distinct keys and no reset is
needed. Every record of a sequence carries its label in the header `label` (`0`/`1`).

The stream is a pure function of the settings and the seed, whatever the sizes of the batches it
is taken in: device picks and fault positions come from one generator, drawn in fixed blocks at
fixed stream positions, and sequence contents from another, drawn in blocks of sequences in the
order devices start them. Only the `ts` written into each value depends on the caller's clock.

Sequences come from the shared labelled generator (`consumer.training.synthetic.generate`), a
block at a time at the block's longest length, each cut to its own length: the generator's
statistics at a step do not depend on the total length, so a cut sequence is a sequence of that
length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import orjson

from consumer.training import synthetic
from producer_sim.labels import SequenceLabel
from producer_sim.simulator.faults import FAULTS, fault_key

LengthDist = Literal["uniform", "normal"]
LENGTH_DISTS: tuple[LengthDist, ...] = ("uniform", "normal")
Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes | None, Headers]  # key, value, headers

_PICK_BLOCK = 4096
_SEQUENCE_BLOCK = 256
_MAX_CHUNK = 4
_LABEL_HEADERS: tuple[Headers, Headers] = ([("label", b"0")], [("label", b"1")])
_BARE_END = b'{"end":true'  # values are stored without their closing brace: `ts` goes there
_INLINE_END = b',"end":true'


@dataclass(frozen=True)
class WorkloadSettings:
    seed: int = 0
    devices: int = 1000
    length_mean: float = float(synthetic.TRAINED_LENGTH)
    length_spread: float = 3.0
    length_dist: LengthDist = "uniform"
    max_length: int = 1000
    chunk_ratio: float = 0.1  # share of messages carrying 2-4 samples
    bare_end_ratio: float = 0.3  # share of ended sequences ended by a bare {"end": true}
    never_end_ratio: float = 0.0
    duplicate_ratio: float = 0.0  # share of messages sent twice in a row
    bad_ratio: float = 0.0  # malformed records per record sent
    key_prefix: str = "dev"

    def __post_init__(self) -> None:
        for name in ("chunk_ratio", "bare_end_ratio", "never_end_ratio", "duplicate_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not 0.0 <= self.bad_ratio < 1.0:
            raise ValueError(f"bad_ratio must be at least 0 and below 1, got {self.bad_ratio}")
        if self.devices < 1:
            raise ValueError(f"devices must be at least 1, got {self.devices}")
        if not 1 <= self.length_mean <= self.max_length or self.length_spread < 0:
            raise ValueError("need 1 <= length_mean <= max_length and length_spread >= 0")
        if self.length_dist not in LENGTH_DISTS:
            raise ValueError(f"length_dist must be one of {LENGTH_DISTS}")


@dataclass
class _Planned:
    """A sequence's encoded messages, before a device takes it."""

    label: int
    messages: list[bytes]  # values without the closing brace
    sizes: list[int]  # samples in each message
    length: int  # samples in all messages, duplicates included
    ended: bool
    duplicates: int


@dataclass
class _Device:
    number: int
    sequences: int = 0  # sequences started
    key: bytes = b""
    plan: _Planned | None = None
    cursor: int = 0
    headers: Headers = field(default_factory=list)


@dataclass
class Counts:
    records: int = 0
    samples: int = 0  # samples in good records, duplicates included
    faults: int = 0
    duplicates: int = 0  # duplicated records of finished sequences
    sequences_started: int = 0
    sequences_finished: int = 0


@dataclass(frozen=True)
class Batch:
    records: list[Record]
    finished: list[SequenceLabel]  # sequences whose last record is in this batch


class Workload:
    def __init__(self, settings: WorkloadSettings) -> None:
        self.settings = settings
        root = np.random.SeedSequence(settings.seed)
        schedule_seed, content_seed = root.spawn(2)
        self._schedule = np.random.default_rng(schedule_seed)
        self._content = np.random.default_rng(content_seed)
        # Some devices talk more than others.
        weights = self._schedule.lognormal(0.0, 0.5, settings.devices)
        self._weights = weights / weights.sum()
        self._picks: list[int] = []
        self._next_pick = 0
        self._until_fault = self._fault_gap()
        self._devices = [_Device(d) for d in range(settings.devices)]
        self._pool: list[_Planned] = []
        self._key_prefix = settings.key_prefix
        self.counts = Counts()

    def take(self, n: int, ts_ms: int) -> Batch:
        """The next `n` records, each value carrying `ts_ms` as its event time."""
        # The hot loop of the simulator: locals only, state written back at the end.
        tail = b',"ts":%d}' % ts_ms
        records: list[Record] = []
        finished: list[SequenceLabel] = []
        append = records.append
        devices, picks, pick = self._devices, self._picks, self._next_pick
        until_fault = self._until_fault
        samples = 0
        for _ in range(n):
            if until_fault == 0:
                append(self._fault())
                until_fault = self._fault_gap()
                continue
            until_fault -= 1
            if pick == len(picks):
                picks, pick = self._new_picks(), 0
            dev = devices[picks[pick]]
            pick += 1
            plan = dev.plan or self._start(dev)
            cursor = dev.cursor
            append((dev.key, plan.messages[cursor] + tail, dev.headers))
            samples += plan.sizes[cursor]
            cursor += 1
            dev.cursor = cursor
            if cursor == len(plan.messages):
                finished.append(
                    SequenceLabel(dev.key.decode(), plan.label, plan.length, plan.ended)
                )
                self.counts.duplicates += plan.duplicates
                dev.plan = None
        self._picks, self._next_pick, self._until_fault = picks, pick, until_fault
        counts = self.counts
        counts.records += n
        counts.samples += samples
        counts.sequences_finished += len(finished)
        return Batch(records, finished)

    def open_sequences(self) -> list[SequenceLabel]:
        """Labels of the sequences started and not finished, with the samples sent so far."""
        out: list[SequenceLabel] = []
        for dev in self._devices:
            if dev.plan is not None and dev.cursor > 0:
                seen = sum(dev.plan.sizes[: dev.cursor])
                out.append(SequenceLabel(dev.key.decode(), dev.plan.label, seen, False, True))
        return out

    def _start(self, dev: _Device) -> _Planned:
        if not self._pool:
            self._pool = self._plan_block()
            self._pool.reverse()  # pop() from the end, in planned order
        plan = self._pool.pop()
        dev.plan = plan
        dev.cursor = 0
        dev.key = f"{self._key_prefix}-{dev.number}-{dev.sequences}".encode()
        dev.headers = _LABEL_HEADERS[plan.label]
        dev.sequences += 1
        self.counts.sequences_started += 1
        return plan

    def _fault(self) -> Record:
        serial = self.counts.faults
        fault = FAULTS[serial % len(FAULTS)]
        self.counts.faults += 1
        return (fault_key(fault, serial), fault.value, [("fault", fault.reason.encode())])

    def _fault_gap(self) -> int:
        """Good records before the next fault: geometric, so faults fall at random positions."""
        ratio = self.settings.bad_ratio
        if ratio == 0:
            return -1  # never reaches 0
        return int(self._schedule.geometric(ratio)) - 1

    def _new_picks(self) -> list[int]:
        picks: list[int] = self._schedule.choice(
            self.settings.devices, _PICK_BLOCK, p=self._weights
        ).tolist()
        return picks

    def _lengths(self, n: int) -> npt.NDArray[np.int64]:
        s = self.settings
        if s.length_dist == "uniform":
            low = max(1, round(s.length_mean - s.length_spread))
            high = max(low, round(s.length_mean + s.length_spread))
            raw = self._content.integers(low, high + 1, n)
        else:
            raw = np.rint(self._content.normal(s.length_mean, s.length_spread, n))
        return np.clip(raw, 1, s.max_length).astype(np.int64)

    def _plan_block(self) -> list[_Planned]:
        s = self.settings
        rng = self._content
        lengths = self._lengths(_SEQUENCE_BLOCK)
        longest = int(lengths.max())
        x, y = synthetic.generate(rng, _SEQUENCE_BLOCK, longest)
        never = (rng.random(_SEQUENCE_BLOCK) < s.never_end_ratio).tolist()
        bare = (rng.random(_SEQUENCE_BLOCK) < s.bare_end_ratio).tolist()
        chunked = (rng.random((_SEQUENCE_BLOCK, longest)) < s.chunk_ratio).tolist()
        sizes = rng.integers(2, _MAX_CHUNK + 1, (_SEQUENCE_BLOCK, longest)).tolist()
        doubled = (rng.random((_SEQUENCE_BLOCK, longest)) < s.duplicate_ratio).tolist()
        labels = y.tolist()
        # One JSON encoding for the whole block, cut into rows: `[[[a,b,c],[d,e,f]],[[...]]]`.
        # float32 numbers print in their shortest exact form and hold no brackets.
        text = orjson.dumps(x, option=orjson.OPT_SERIALIZE_NUMPY)[3:-3].split(b"]],[[")
        return [
            _encode(
                text[i].split(b"],[", length)[:length],
                labels[i],
                _Draws(chunked[i], sizes[i], doubled[i], never[i], bare[i]),
            )
            for i, length in enumerate(lengths.tolist())
        ]


@dataclass(frozen=True, slots=True)
class _Draws:
    """One sequence's random choices, per message (`chunked`, `sizes`, `doubled`) or whole."""

    chunked: list[bool]
    sizes: list[int]
    doubled: list[bool]
    never_end: bool
    bare_end: bool


_ONE = b'{"features":['
_MANY = b'{"features":[['


def _encode(rows: list[bytes], label: int, draws: _Draws) -> _Planned:
    """One sequence's messages from its rows' JSON text (`a,b,c`). A duplicate is never the last
    message of a sequence: a repeated end would start a new sequence under the ended key."""
    chunked, sizes, doubled = draws.chunked, draws.sizes, draws.doubled
    length = len(rows)
    if not any(chunked[:length]) and not any(doubled[:length]):
        # The common case, one sample per message, without the loop.
        messages = [_ONE + row + b"]" for row in rows]
        message_sizes = [1] * length
        return _finish(label, messages, message_sizes, 0, draws)
    messages = []
    message_sizes = []
    done = 0
    duplicates = 0
    m = 0
    while done < length:
        take = min(sizes[m], length - done) if chunked[m] and length - done >= 2 else 1
        if take == 1:
            body = _ONE + rows[done] + b"]"
        else:
            body = _MANY + b"],[".join(rows[done : done + take]) + b"]]"
        done += take
        messages.append(body)
        message_sizes.append(take)
        if done < length and doubled[m]:
            messages.append(body)
            message_sizes.append(take)
            duplicates += 1
        m += 1
    return _finish(label, messages, message_sizes, duplicates, draws)


def _finish(
    label: int, messages: list[bytes], sizes: list[int], duplicates: int, draws: _Draws
) -> _Planned:
    """Adds the end: inline on the last message (never a duplicate), a bare marker, or none."""
    if not draws.never_end:
        if draws.bare_end:
            messages.append(_BARE_END)
            sizes.append(0)
        else:
            messages[-1] += _INLINE_END
    return _Planned(label, messages, sizes, sum(sizes), not draws.never_end, duplicates)
