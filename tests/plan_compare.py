"""Comparing two step plans field by field, weight arrays bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np

from consumer.model.specs import StepPlan


def plan_differences(got: StepPlan, want: StepPlan) -> list[str]:
    """Every field in which the plans differ (the source path aside); empty when they are equal."""
    found = [
        f"{field}: {getattr(got, field)!r} != {getattr(want, field)!r}"
        for field in ("n_features", "n_outputs", "trained_length", "version")
        if getattr(got, field) != getattr(want, field)
    ]
    if len(got.layers) != len(want.layers):
        return [*found, f"{len(got.layers)} layers != {len(want.layers)}"]
    for a, b in zip(got.layers, want.layers, strict=True):
        if type(a) is not type(b):
            found.append(f"{a.name}: {type(a).__name__} != {type(b).__name__}")
            continue
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                same = (
                    isinstance(x, np.ndarray)
                    and isinstance(y, np.ndarray)
                    and x.dtype == y.dtype
                    and x.shape == y.shape
                    and x.tobytes() == y.tobytes()
                )
                if not same:
                    found.append(f"{a.name}.{field.name}: arrays differ")
            elif x != y:
                found.append(f"{a.name}.{field.name}: {x!r} != {y!r}")
    return found
