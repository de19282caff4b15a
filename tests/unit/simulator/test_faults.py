"""The simulator's fault corpus: every rejection reason, each case rejected for its reason."""

from __future__ import annotations

import pytest

from consumer.codecs.inputs import REJECT_REASONS, Rejection, decode_input
from producer_sim.simulator.faults import FAULTS, Fault, fault_key


def test_every_rejection_reason_has_a_case() -> None:
    assert {f.reason for f in FAULTS} == set(REJECT_REASONS)
    assert len({f.name for f in FAULTS}) == len(FAULTS)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_the_consumer_rejects_each_case_for_its_reason(fault: Fault) -> None:
    got = decode_input(fault_key(fault, 12), fault.value, n_features=3, partition=0, offset=0)
    assert isinstance(got, Rejection)
    assert got.reason == fault.reason


def test_keys_of_value_faults_are_unique_and_key_faults_keep_theirs() -> None:
    value_fault = next(f for f in FAULTS if not f.fixed_key)
    assert fault_key(value_fault, 1) != fault_key(value_fault, 2)
    null_key = next(f for f in FAULTS if f.reason == "missing_key")
    assert fault_key(null_key, 5) is None
