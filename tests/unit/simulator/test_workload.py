"""The simulated stream: deterministic per seed, valid wire format, labels that match it."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from consumer.codecs.inputs import InputRecord, Rejection, decode_input
from producer_sim.simulator.faults import FAULTS
from producer_sim.simulator.workload import Record, Workload, WorkloadSettings

TS = 1_764_150_000_000


def take_in_chunks(settings: WorkloadSettings, sizes: list[int]) -> list[Record]:
    w = Workload(settings)
    records: list[Record] = []
    for n in sizes:
        records += w.take(n, TS).records
    return records


def decode(record: Record) -> InputRecord | Rejection:
    key, value, _ = record
    return decode_input(key, value, n_features=3, partition=0, offset=0)


FAULTY = WorkloadSettings(
    seed=7,
    devices=50,
    chunk_ratio=0.3,
    never_end_ratio=0.1,
    duplicate_ratio=0.1,
    bad_ratio=0.05,
)


def test_same_seed_same_records_whatever_the_batch_sizes() -> None:
    whole = take_in_chunks(FAULTY, [3000])
    pieces = take_in_chunks(FAULTY, [1, 7, 500, 13, 1000, 1479])
    assert whole == pieces
    assert len(whole) == 3000


def test_another_seed_gives_other_records() -> None:
    other = WorkloadSettings(**{**FAULTY.__dict__, "seed": 8})
    assert take_in_chunks(FAULTY, [500]) != take_in_chunks(other, [500])


def test_values_carry_the_given_event_time() -> None:
    w = Workload(WorkloadSettings(seed=1))
    first = [decode(r) for r in w.take(50, 1000).records]
    later = [decode(r) for r in w.take(50, 2000).records]
    assert {r.ts for r in first if isinstance(r, InputRecord)} == {1000}
    assert {r.ts for r in later if isinstance(r, InputRecord)} == {2000}


def test_good_records_are_valid_and_faults_get_their_reason() -> None:
    w = Workload(FAULTY)
    records = w.take(5000, TS).records
    faults = 0
    for record in records:
        headers = dict(record[2])
        decoded = decode(record)
        if "fault" in headers:
            faults += 1
            assert isinstance(decoded, Rejection)
            assert decoded.reason == headers["fault"].decode()
        else:
            assert isinstance(decoded, InputRecord), decoded
    assert faults == w.counts.faults > len(FAULTS)  # the corpus cycled at least once
    assert 0.03 < faults / len(records) < 0.07


def test_labels_match_the_records_of_each_key() -> None:
    w = Workload(FAULTY)
    batches = [w.take(700, TS) for _ in range(10)]
    labels = {item.key: item for b in batches for item in b.finished}
    assert not any(item.cut_short for item in labels.values())
    cut = w.open_sequences()
    assert cut and all(item.cut_short and not item.ended for item in cut)
    labels.update({item.key: item for item in cut})
    samples: Counter[str] = Counter()
    ended: set[str] = set()
    header_labels: dict[str, set[bytes]] = defaultdict(set)
    for b in batches:
        for record in b.records:
            decoded = decode(record)
            if isinstance(decoded, Rejection):
                continue
            assert decoded.key not in ended, "nothing is sent after an end marker"
            samples[decoded.key] += len(decoded.features)
            header_labels[decoded.key].add(dict(record[2])["label"])
            if decoded.end:
                ended.add(decoded.key)
    assert set(samples) == set(labels)
    for key, item in labels.items():
        assert samples[key] == item.length, key
        assert header_labels[key] == {str(item.label).encode()}
        assert (key in ended) == item.ended
    assert sum(samples.values()) == w.counts.samples
    assert {item.label for item in labels.values()} == {0, 1}
    # Some sequences never end, the rest end inline or by a bare marker.
    assert 0 < sum(not item.ended for item in labels.values()) < len(labels)


def test_keys_name_the_device_and_its_sequence_number() -> None:
    w = Workload(WorkloadSettings(seed=2, devices=3, length_mean=2, length_spread=0))
    batches = [w.take(30, TS) for _ in range(3)]
    keys = [item.key for b in batches for item in b.finished]
    per_device: dict[str, list[int]] = defaultdict(list)
    for key in keys:
        prefix, device, n = key.split("-")
        assert prefix == "dev"
        per_device[device].append(int(n))
    assert set(per_device) == {"0", "1", "2"}
    for numbers in per_device.values():
        assert numbers == list(range(len(numbers)))  # one after another, never reused


@pytest.mark.parametrize(
    ("dist", "mean_spread", "low", "high", "average"),
    [
        ("uniform", (7, 3), 4, 10, 7.0),
        ("uniform", (2, 5), 1, 7, 4.0),  # cut at 1: the range is 1..7
        ("normal", (7, 1), 1, 1000, 7.0),
    ],
)
def test_lengths_follow_the_distribution(
    dist: str, mean_spread: tuple[float, float], low: int, high: int, average: float
) -> None:
    settings = WorkloadSettings(
        seed=3,
        length_dist=dist,  # type: ignore[arg-type]
        length_mean=mean_spread[0],
        length_spread=mean_spread[1],
    )
    w = Workload(settings)
    lengths = [item.length for _ in range(20) for item in w.take(1000, TS).finished]
    assert low <= min(lengths) and max(lengths) <= high
    assert sum(lengths) / len(lengths) == pytest.approx(average, abs=0.2)
    if dist == "uniform":
        assert set(lengths) == set(range(low, high + 1))


def test_normal_lengths_are_at_least_one() -> None:
    settings = WorkloadSettings(seed=3, length_dist="normal", length_mean=2, length_spread=4)
    lengths = [item.length for item in Workload(settings).take(5000, TS).finished]
    assert min(lengths) == 1
    assert max(lengths) > 8


def test_no_chunks_no_ends_and_only_bare_ends() -> None:
    plain = Workload(WorkloadSettings(seed=4, chunk_ratio=0, never_end_ratio=1))
    for record in plain.take(2000, TS).records:
        decoded = decode(record)
        assert isinstance(decoded, InputRecord)
        assert len(decoded.features) == 1 and not decoded.end
    bare = Workload(WorkloadSettings(seed=4, bare_end_ratio=1))
    ends = [d for d in map(decode, bare.take(2000, TS).records) if isinstance(d, InputRecord)]
    assert all(not d.features for d in ends if d.end)
    assert any(d.end for d in ends)


def test_duplicates_are_repeated_in_a_row_and_never_end_a_sequence() -> None:
    w = Workload(WorkloadSettings(seed=5, devices=1, duplicate_ratio=0.3, bare_end_ratio=0))
    values = [r[1] for r in w.take(3000, TS).records]
    repeats = [a for a, b in itertools.pairwise(values) if a == b]
    # The open sequence's duplicates are not counted yet: at least as many repeats as counted.
    assert len(repeats) >= w.counts.duplicates > 0
    assert all(b'"end"' not in v for v in repeats if v is not None)


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_ratio": 1.5},
        {"bad_ratio": 1.0},
        {"devices": 0},
        {"length_mean": 0.5},
        {"length_spread": -1},
        {"length_dist": "poisson"},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WorkloadSettings(**bad)  # type: ignore[arg-type]
