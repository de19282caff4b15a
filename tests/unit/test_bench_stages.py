"""`python -m bench.stages` measures every stage of the worker's loop on real Message objects."""

from __future__ import annotations

from pathlib import Path

from bench import stages
from bench.models import save_streaming_model


def test_every_stage_is_measured(tmp_path: Path) -> None:
    model = save_streaming_model(tmp_path / "m.keras")
    us = stages.measure(model, n_keys=300, batch=64, batches=3, warmup=1)
    assert set(us) == set(stages.STAGES)
    assert all(value > 0 for value in us.values()), us
