"""Whether a part runs its optional C extension or its numpy reference code."""

from __future__ import annotations


def choose(native: bool | None, *, built: bool, module: str) -> bool:
    """Use the extension when built, unless `native` says otherwise; asking for it where it is
    not built is an error rather than a silent fallback."""
    if native and not built:
        raise RuntimeError(
            f"the C extension {module} is not built: install the package again where a C "
            "compiler is (make install)"
        )
    return built if native is None else native
