from __future__ import annotations

import numpy as np
import pytest

from consumer.codecs import changelog as changelog_codec
from consumer.engine.state_table import EndedKey, StateTable

SIZES = (32, 32, 16, 16)


def filled_table() -> StateTable:
    table = StateTable(SIZES, 1, initial_capacity=1)
    rng = np.random.default_rng(7)
    for i in range(3):
        slot = table.allocate(f"dev-{i}", partition=i)
        for arr in table.states:
            arr[slot] = rng.standard_normal(int(arr.shape[1]), dtype=np.float32)
        table.steps[slot] = 5 + i
        table.last_offset[slot] = 1000 + i
        table.last_seen[slot] = 1.7e9 + i
        table.last_output[slot] = rng.random(1, dtype=np.float32)
    return table


def test_state_round_trips_bit_for_bit() -> None:
    source = filled_table()
    target = StateTable(SIZES, 1)
    for key in source.active_keys():
        value = changelog_codec.encode_state(source, key, "abcd1234")
        assert changelog_codec.apply_record(target, key, 3, value, "abcd1234") == "restored"
    for key in source.active_keys():
        s, t = source.slot_of(key), target.slot_of(key)
        assert s is not None and t is not None
        for a, b in zip(source.states, target.states, strict=True):
            assert a[s].tobytes() == b[t].tobytes()
        assert target.steps[t] == source.steps[s]
        assert target.last_offset[t] == source.last_offset[s]
        assert target.last_seen[t] == source.last_seen[s]
        assert target.last_output[t].tobytes() == source.last_output[s].tobytes()
        assert target.partition[t] == 3


def test_a_state_of_the_seed_model_is_small() -> None:
    value = changelog_codec.encode_state(filled_table(), "dev-0", "abcd1234")
    assert len(value) < 450  # 96 floats of state, one output, 40 bytes of header


def test_another_model_version_is_discarded() -> None:
    source = filled_table()
    target = StateTable(SIZES, 1)
    value = changelog_codec.encode_state(source, "dev-1", "old00000")
    assert changelog_codec.apply_record(target, "dev-1", 1, value, "new11111") == "version_mismatch"
    assert len(target) == 0


def test_ended_record_restores_a_pending_end_and_clears_state() -> None:
    table = filled_table()
    value = changelog_codec.encode_ended(EndedKey(partition=0, offset=77), "abcd1234")
    assert changelog_codec.apply_record(table, "dev-0", 0, value, "abcd1234") == "ended"
    assert "dev-0" not in table
    assert table.ended["dev-0"] == EndedKey(0, 77)


def test_tombstone_forgets_state_and_pending_end() -> None:
    table = filled_table()
    table.ended["gone"] = EndedKey(0, 1)
    changelog_codec.forget(table, "dev-2")
    changelog_codec.forget(table, "gone")
    assert "dev-2" not in table and "gone" not in table.ended


@pytest.mark.parametrize(
    "value",
    [b"", b"LSS1", b"XXXX\x00\x00", b"LSS1\x00\x08abcd1234" + b"\x00" * 10],
)
def test_corrupt_values_are_reported_not_raised(value: bytes) -> None:
    assert (
        changelog_codec.apply_record(StateTable(SIZES, 1), "k", 0, value, "abcd1234") == "corrupt"
    )


def test_state_of_another_shape_is_corrupt() -> None:
    value = changelog_codec.encode_state(filled_table(), "dev-0", "abcd1234")
    assert (
        changelog_codec.apply_record(StateTable((8,), 1), "dev-0", 0, value, "abcd1234")
        == "corrupt"
    )
