"""Where the served model comes from: one model file, or a model store directory.

A store directory holds model files (`.keras`, `.h5`) and a `current` pointer: a symbolic link to
one of them, or a text file naming one. New sequences start on the version `current` names;
under `--on-model-change drain`, a sequence that started on another version keeps stepping on it,
and a worker that restores such a sequence finds the version's file here by its version (the
hash of the model's config and weights), as long as the file stays in the directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from consumer.model.errors import ModelError
from consumer.model.step import BackendName, StepFunction

log = logging.getLogger("consumer.model_store")

POINTER = "current"
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
ChangePolicy = Literal["drain", "restart"]
CHANGE_POLICIES: tuple[ChangePolicy, ...] = ("drain", "restart")
# What identifies a file's contents cheaply: a changed file gets read again.
_Stamp = tuple[str, int, int]


def _load_step(path: Path, backend: BackendName) -> StepFunction:
    from consumer.model import load_step_function  # noqa: PLC0415  (the package imports us)

    return load_step_function(path, backend)


def _plan_version(path: Path) -> str:
    from consumer.model import load_plan  # noqa: PLC0415

    return load_plan(path).version


class ModelStore:
    def __init__(
        self,
        path: str | Path,
        backend: BackendName = "numpy",
        *,
        load: Callable[[Path, BackendName], StepFunction] = _load_step,
        version_of: Callable[[Path], str] = _plan_version,
    ) -> None:
        self.path = Path(path)
        self.backend = backend
        self._load = load
        self._version_of = version_of
        self._versions: dict[Path, tuple[_Stamp, str | None]] = {}

    @property
    def is_directory(self) -> bool:
        return self.path.is_dir()

    def current_file(self) -> Path:
        """The model file new sequences start on (ModelError naming the problem)."""
        if not self.is_directory:
            return self.path
        pointer = self.path / POINTER
        if pointer.is_symlink():
            target, named = pointer.resolve(), str(pointer.readlink())
        elif pointer.is_file():
            named = pointer.read_text(encoding="utf-8").strip()
            if not named:
                raise ModelError(f"{pointer} is empty: it must name a model file of the store")
            target = self.path / named
        else:
            raise ModelError(
                f"model store {self.path} has no {POINTER!r} pointer: make {pointer} a symbolic "
                "link to one of its model files, or a text file naming one"
            )
        if not target.is_file():
            raise ModelError(f"{pointer} points at {named!r}, which is not a file")
        return target

    def stamp(self) -> _Stamp | None:
        """What `current` points at and that file's size and time: a change is worth a load."""
        try:
            target = self.current_file()
            st = target.stat()
        except (ModelError, OSError):
            return None
        return (str(target), st.st_mtime_ns, st.st_size)

    def load_current(self) -> StepFunction:
        return self._load(self.current_file(), self.backend)

    def load_version(self, version: str) -> StepFunction | None:
        """The step function of the store's file holding `version`, or None if none does."""
        for file in self._model_files():
            if self._version(file) == version:
                try:
                    return self._load(file, self.backend)
                except ModelError as exc:
                    log.warning("model file %s (version %s) failed to load: %s", file, version, exc)
        return None

    def _model_files(self) -> list[Path]:
        if not self.is_directory:
            return [self.path] if self.path.is_file() else []
        return sorted(p for p in self.path.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())

    def _version(self, file: Path) -> str | None:
        try:
            st = file.stat()
        except OSError:
            return None
        stamp = (str(file), st.st_mtime_ns, st.st_size)
        known = self._versions.get(file)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            version: str | None = self._version_of(file)
        except ModelError:
            version = None  # not a model this service can serve: no version of it is sought
        self._versions[file] = (stamp, version)
        return version
