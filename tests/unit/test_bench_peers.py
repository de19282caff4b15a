"""The benchmark peers' command lines; they run against a real broker in `python -m bench`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.peers import kcat
from bench.peers.kcat import KcatMissingError, KcatPipe


def test_kcat_reads_in_a_group_and_writes_key_and_value_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: "/usr/bin/kcat")
    pipe = KcatPipe("127.0.0.1:9092", "in", "out", "g1", tmp_path / "kcat.log")
    consumer, producer = pipe.consumer_argv(), pipe.producer_argv()
    assert consumer[:2] == ["/usr/bin/kcat", "-C"] and consumer[-1] == "in"
    assert consumer[consumer.index("-G") + 1] == "g1"
    separator = producer[producer.index("-K") + 1]
    assert consumer[consumer.index("-f") + 1] == f"%k{separator}%s\n"
    assert producer[producer.index("-t") + 1] == "out"


def test_a_missing_kcat_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(KcatMissingError, match=r"scripts/install-kcat\.sh"):
        kcat.kcat_path()
