"""`python -m tests.reliability.failing_worker run <flags>`: the service's normal entry point, with
its engine made to raise on its Nth non-empty micro-batch (FAIL_ON_BATCH), after writing that
batch's input positions, one `partition offset` per line, to FAIL_POSITIONS_FILE. The fault is
injected from outside: the product has no test hook."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from consumer import __main__ as entry  # first: it sets the environment the service expects
from consumer.codecs.input_batch import DecodedBatch
from consumer.engine.versions import ModelVersions, Results


class InjectedError(RuntimeError):
    pass


def install(fail_on: int, positions_file: Path) -> None:
    original = ModelVersions.process_batch
    calls = 0

    def process_batch(self: ModelVersions, batch: DecodedBatch) -> Results:
        nonlocal calls
        if len(batch):
            calls += 1
            if calls == fail_on:
                records, _ = batch.in_order()
                lines = "".join(f"{r.partition} {r.offset}\n" for r in records)
                positions_file.write_text(lines)
                raise InjectedError(f"injected failure in micro-batch {calls}")
        return original(self, batch)

    ModelVersions.process_batch = process_batch  # type: ignore[method-assign]


if __name__ == "__main__":
    install(int(os.environ["FAIL_ON_BATCH"]), Path(os.environ["FAIL_POSITIONS_FILE"]))
    sys.exit(entry.main(sys.argv[1:]))
