"""The C client's ceiling: Debian's `kcat` consuming the input topic in a consumer group, piped
into a second `kcat` producing every record to the output topic, keys kept.

    kcat -C -G <group> <input> -f '%k\\t%s\\n'  |  kcat -P -t <output> -K '\\t'

No decoding, no model, no state: what two C programs do with the bytes. The consumer commits
what it has read (librdkafka's auto-commit), so "the group has committed the input's end" means
read, not yet produced; the rate is taken, as for every other process, from the Kafka timestamps
of the outputs, which the producing `kcat` sets when it produces each one. At-least-once only:
kcat has no transactions.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# The values are JSON without tabs or newlines (bench.workload), so a tab separates key and value.
_FORMAT = "%k\t%s\n"
AUTO_COMMIT_MS = 200  # the consumer's auto-commit interval


class KcatMissingError(RuntimeError):
    """kcat is not on PATH."""


def kcat_available() -> bool:
    return shutil.which("kcat") is not None


def kcat_path() -> str:
    found = shutil.which("kcat")
    if found is None:
        raise KcatMissingError("kcat is not on PATH: `bash scripts/install-kcat.sh` installs it")
    return found


@dataclass
class KcatPipe:
    """The two kcat processes, their standard error appended to `log_path`."""

    bootstrap: str
    input_topic: str
    output_topic: str
    group: str
    log_path: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def consumer_argv(self) -> list[str]:
        return [
            kcat_path(), "-C", "-q", "-b", self.bootstrap, "-G", self.group,
            "-X", "auto.offset.reset=earliest", "-X", f"auto.commit.interval.ms={AUTO_COMMIT_MS}",
            "-f", _FORMAT, self.input_topic,
        ]  # fmt: skip

    def producer_argv(self) -> list[str]:
        return [
            kcat_path(), "-P", "-q", "-b", self.bootstrap, "-t", self.output_topic,
            "-K", "\t", "-X", "linger.ms=5",
        ]  # fmt: skip

    def start(self) -> KcatPipe:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            consumer = subprocess.Popen(
                self.consumer_argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
            producer = subprocess.Popen(self.producer_argv(), stdin=consumer.stdout, stderr=log)
        assert consumer.stdout is not None
        consumer.stdout.close()  # the producer holds the pipe's read end now
        self.procs = [consumer, producer]
        return self

    def check_alive(self) -> None:
        for role, proc in zip(("consumer", "producer"), self.procs, strict=True):
            code = proc.poll()
            if code is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"kcat ({role}) exited with {code}; log:\n{tail}")

    def stop(self, timeout_s: float = 60.0) -> int:
        """Stop the consumer; the producer sees the end of its input, delivers what it holds and
        exits. Its exit code (0: every record delivered)."""
        consumer, producer = self.procs
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout_s)
        try:
            return producer.wait(timeout_s)
        except subprocess.TimeoutExpired:
            producer.kill()
            producer.wait(10)
            raise
