"""Why a model file cannot be used.

ModelError            the file is missing, unreadable, or not a Keras model we can open
└── ModelRefused      the model loads but cannot be streamed; `reasons` lists every problem
"""

from __future__ import annotations


class ModelError(Exception):
    """The model file cannot be loaded or used."""


class ModelRefused(ModelError):  # noqa: N818 (the name the rest of the product uses)
    """The model is not streamable (or not safe to load); every reason found, one per entry."""

    def __init__(self, reasons: tuple[str, ...], source: str | None = None) -> None:
        self.reasons = reasons
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"- {reason}" for reason in reasons)
        super().__init__(f"model refused{where}:\n{lines}")
