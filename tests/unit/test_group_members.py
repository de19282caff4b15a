"""The group lookup's child process: its failures, an abort included, come back as errors."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.group_members import GroupLookupError, static_members_of


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_group_that_cannot_be_reached_is_an_error_naming_the_reason() -> None:
    properties = {"bootstrap.servers": f"127.0.0.1:{_closed_port()}"}
    with pytest.raises(GroupLookupError, match="exit status 1"):
        static_members_of(properties, "g", timeout_s=1.0)


@pytest.fixture
def lookup_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Makes the lookup's child a shell script with the given body, in place of the interpreter."""

    def use(body: str) -> None:
        script = tmp_path / "python"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setattr(sys, "executable", str(script))

    return use


def test_a_lookup_process_that_aborts_is_an_error_not_a_crash(
    lookup_process: Callable[[str], None],
) -> None:
    # What the client library's assertion does to the process that runs the lookup.
    lookup_process("kill -ABRT $$")
    with pytest.raises(GroupLookupError, match="exit status -6"):
        static_members_of({"bootstrap.servers": "127.0.0.1:1"}, "g", timeout_s=1.0)


def test_an_answer_that_is_not_a_list_of_ids_is_an_error(
    lookup_process: Callable[[str], None],
) -> None:
    lookup_process("cat > /dev/null\necho '{\"a\": 1}'")
    with pytest.raises(GroupLookupError, match="not a list"):
        static_members_of({"bootstrap.servers": "127.0.0.1:1"}, "g", timeout_s=1.0)
