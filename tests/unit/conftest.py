"""Fixtures shared by unit tests that need a model file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.model.conftest import zoo_model


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The user's model and a GRU model saved once as .keras files."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name in ("user", "gru_reset_after_then_lstm"):
        path = folder / f"{name}.keras"
        zoo_model(name).save(path)
        paths[name] = path
    return paths
