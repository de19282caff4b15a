"""`python -m consumer check-model PATH`: print the streaming plan, or why the model is refused.

Exit codes: 0 streamable, 2 refused (one reason per line), 1 the file cannot be loaded.
The file is read without TensorFlow or Keras (`consumer.model.file_plan`).
"""

# ruff: noqa: PLC0415  (the model package is imported after the arguments are checked)

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer check-model",
        description="Check that a Keras model can be streamed and print its step plan.",
    )
    parser.add_argument("path", type=Path, help="model file (.keras or legacy .h5)")
    args = parser.parse_args(argv)
    from consumer.model import ModelError, ModelRefused, describe_plan, load_plan

    try:
        plan = load_plan(args.path)
    except ModelRefused as refused:
        print(f"refused: {args.path} cannot be streamed")
        for reason in refused.reasons:
            print(reason)
        return 2
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(describe_plan(plan))
    return 0
