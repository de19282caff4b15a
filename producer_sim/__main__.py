"""`python -m producer_sim [simulate|evaluate|demo] [options]`; `simulate` is the default."""

from __future__ import annotations

import importlib
import sys

# Imported on demand: the simulator need not load matplotlib, nor the evaluation the producer.
COMMANDS = {
    "simulate": ("producer_sim.simulator.command", "send labelled sequences to the input topic"),
    "evaluate": ("producer_sim.evaluation.command", "score the outputs against the labels: report"),
    "demo": ("producer_sim.demo.command", "broker, two workers, simulator, live view and report"),
}


def usage() -> str:
    lines = ["usage: python -m producer_sim [command] [options]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items()]
    lines.append("\nWithout a command: simulate. `<command> --help` describes its options.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        print("\n" + importlib.import_module(COMMANDS["simulate"][0]).parser().format_help())
        return 0
    name, rest = "simulate", argv
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in COMMANDS:
            print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
            return 2
    code: int = importlib.import_module(COMMANDS[name][0]).main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
