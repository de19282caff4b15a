"""The README's layout tables and the tree agree: every module is named, every name exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("consumer", "producer_sim", "bench")


def layout_rows() -> list[str]:
    """Every table row of the README's "### Layout" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n### Layout\n", 1)[1].split("\n#", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def first_cell(row: str) -> str:
    return row.split(" | ", 1)[0]


def modules() -> list[Path]:
    found = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    return sorted(p.relative_to(REPO) for p in found if p.name != "__init__.py")


def named(module: Path, rows: list[str]) -> bool:
    """By its path; by `name` in a row that starts with its folder; or, in a row of one folder's
    modules (`pkg/a.py`, `b.py`), by `name.py` after its folder."""
    folder = f"{module.parent.as_posix()}/"
    for row in rows:
        if f"`{module.as_posix()}`" in first_cell(row):
            return True
        if row.startswith(f"| `{folder}") and (
            f"`{module.stem}`" in row or f"`{module.name}`" in row
        ):
            return True
    return False


def test_every_module_is_in_the_layout_tables() -> None:
    rows = layout_rows()
    assert len(rows) > 20
    missing = [str(m) for m in modules() if not named(m, rows)]
    assert not missing, f"modules missing from README's layout tables: {missing}"


def test_every_path_in_the_layout_tables_exists() -> None:
    named_paths = []
    for row in layout_rows():
        paths = re.findall(r"`([\w/]+(?:\.py|/))`", first_cell(row))
        folder = paths[0].rsplit("/", 1)[0]  # a bare `b.py` is in the row's first path's folder
        named_paths += [p if "/" in p else f"{folder}/{p}" for p in paths]
    assert named_paths
    absent = [p for p in named_paths if not (REPO / p).exists()]
    assert not absent, f"README's layout tables name what the tree does not have: {absent}"
