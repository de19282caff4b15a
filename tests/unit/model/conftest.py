"""Fixtures shared by the model tests: Keras models are slow to build, so they are cached."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests import model_zoo


@cache
def zoo_model(name: str) -> Any:
    return model_zoo.EXACTNESS_MODELS[name]()


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
