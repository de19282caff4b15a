"""The model store: a file, or a directory of model files with a `current` pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.model.errors import ModelError
from consumer.model.step import BackendName, StepFunction
from consumer.model.store import ModelStore
from tests.prefix_sum_step import PrefixSumStep


class VersionedStep(PrefixSumStep):
    def __init__(self, version: str) -> None:
        super().__init__()
        self._version = version

    @property
    def version(self) -> str:
        return self._version


def content(path: Path) -> str:
    """A fake model file's version: its text (a real store hashes config and weights)."""
    text = path.read_text()
    if text == "broken":
        raise ModelError(f"{path} is not a model")
    return text


def load(path: Path, _backend: BackendName) -> StepFunction:
    return VersionedStep(content(path))


def store_with(tmp_path: Path, files: dict[str, str]) -> ModelStore:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return ModelStore(tmp_path, load=load, version_of=content)


def test_a_single_file_is_its_own_current_version(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_text("v1")
    store = ModelStore(model, load=load, version_of=content)
    assert not store.is_directory and store.current_file() == model
    assert store.load_current().version == "v1"
    assert store.load_version("v1") is not None and store.load_version("v0") is None


def test_current_may_be_a_symbolic_link_or_a_file_naming_the_model(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"a.keras": "v1", "b.keras": "v2"})
    (tmp_path / "current").symlink_to("a.keras")
    assert store.load_current().version == "v1"
    (tmp_path / "current").unlink()
    (tmp_path / "current").write_text("b.keras\n")
    assert store.load_current().version == "v2"


@pytest.mark.parametrize(
    ("pointer", "message"),
    [(None, "has no 'current' pointer"), ("", "is empty"), ("gone.keras", "not a file")],
)
def test_a_bad_pointer_is_named(tmp_path: Path, pointer: str | None, message: str) -> None:
    store = store_with(tmp_path, {"a.keras": "v1"})
    if pointer is not None:
        (tmp_path / "current").write_text(pointer)
    with pytest.raises(ModelError, match=message):
        store.load_current()
    assert store.stamp() is None


def test_a_version_is_found_by_its_content_and_files_are_read_once(tmp_path: Path) -> None:
    reads: list[str] = []

    def counted(path: Path) -> str:
        reads.append(path.name)
        return content(path)

    for name, text in {
        "a.keras": "v1",
        "b.h5": "v2",
        "notes.txt": "v3",
        "c.keras": "broken",
    }.items():
        (tmp_path / name).write_text(text)
    store = ModelStore(tmp_path, load=load, version_of=counted)
    found = store.load_version("v2")
    assert found is not None and found.version == "v2"
    assert store.load_version("v3") is None  # not a model file name
    assert sorted(reads) == ["a.keras", "b.h5", "c.keras"]  # each once; the broken one skipped
    assert store.load_version("v1") is not None and len(reads) == 3


def test_the_stamp_changes_with_the_pointer_and_the_file(tmp_path: Path) -> None:
    store = store_with(tmp_path, {"a.keras": "v1", "b.keras": "v2"})
    (tmp_path / "current").symlink_to("a.keras")
    first = store.stamp()
    assert first is not None and store.stamp() == first
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("b.keras")
    assert store.stamp() not in (None, first)
