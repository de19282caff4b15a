"""`python -m consumer <command>`: run, replay, train, check-model, create-topics."""

from __future__ import annotations

import faulthandler
import importlib
import os
import signal
import sys

# One BLAS thread: the model step's matrices are small, and OpenBLAS's threads cost ten times
# more than they gain as soon as the other core is busy (measured; see BENCHMARKS.md).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Commands are imported on demand: `--help` and light commands need not load TensorFlow.
COMMANDS = {
    "run": ("consumer.commands.run", "consume, score and produce: the service"),
    "replay": ("consumer.commands.replay", "score a JSON-lines file without Kafka"),
    "train": ("consumer.commands.train", "train the reference model on the synthetic data"),
    "check-model": ("consumer.commands.check_model", "print a model's streaming plan or refusal"),
    "create-topics": ("consumer.commands.create_topics", "create the topics a group needs"),
}


def usage() -> str:
    lines = ["usage: python -m consumer <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("\n`python -m consumer <command> --help` describes a command's options.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a worker waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
