"""Fixtures shared by the model tests: Keras models are slow to build, so they are cached."""

from __future__ import annotations

from functools import cache
from typing import Any

from tests import model_zoo


@cache
def zoo_model(name: str) -> Any:
    return model_zoo.EXACTNESS_MODELS[name]()
