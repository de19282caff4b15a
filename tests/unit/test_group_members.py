"""The group lookup's child process: its failures, an abort included, come back as errors."""

from __future__ import annotations

import socket
import sys
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


def test_a_lookup_process_that_aborts_is_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the client library's assertion does to the process that runs the lookup.
    aborting = tmp_path / "python"
    aborting.write_text("#!/bin/sh\nkill -ABRT $$\n")
    aborting.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(aborting))
    with pytest.raises(GroupLookupError, match="exit status -6"):
        static_members_of({"bootstrap.servers": "127.0.0.1:1"}, "g", timeout_s=1.0)


def test_an_answer_that_is_not_a_list_of_ids_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    talking = tmp_path / "python"
    talking.write_text("#!/bin/sh\ncat > /dev/null\necho '{\"a\": 1}'\n")
    talking.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(talking))
    with pytest.raises(GroupLookupError, match="not a list"):
        static_members_of({"bootstrap.servers": "127.0.0.1:1"}, "g", timeout_s=1.0)
