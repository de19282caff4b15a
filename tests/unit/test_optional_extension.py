"""The package builds without a C compiler (the engine then runs its numpy code alone), and
builds refuse to go on without the extension when asked to (the container images)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build_wheel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.so", "tests", "deploy", "docs"),
    )
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", "wheels", "."],
        cwd=source,
        env={**os.environ, "CC": "/bin/false", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_a_compiler_the_wheel_has_no_extension(tmp_path: Path) -> None:
    built = _build_wheel(tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "src" / "wheels").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "consumer/engine/key_index.py" in names
    assert not [n for n in names if n.endswith(".so")]


def test_a_required_extension_that_does_not_compile_fails_the_build(tmp_path: Path) -> None:
    built = _build_wheel(tmp_path, LSTM_SCORER_REQUIRE_EXTENSION="1")
    assert built.returncode != 0
    assert "batch_loops.c" in built.stdout + built.stderr
