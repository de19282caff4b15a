"""Whether a part runs its optional C extension or its numpy reference code."""

from __future__ import annotations

import importlib


class OptionalExtension:
    """A C extension the install builds where it can (`setup.py`); without it, the numpy code,
    which stays the reference, serves alone."""

    def __init__(self, module: str) -> None:
        self.module = module
        try:
            importlib.import_module(module)
        except ImportError:
            self.built = False
        else:
            self.built = True

    def choose(self, native: bool | None) -> bool:
        """Use the extension when built, unless `native` says otherwise; asking for it where it
        is not built is an error rather than a silent fallback."""
        if native and not self.built:
            raise RuntimeError(
                f"the C extension {self.module} is not built: install the package again where a "
                "C compiler is (make install)"
            )
        return self.built if native is None else native
