"""`python -m consumer train`: train the reference model on the synthetic generator and save it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from consumer.model import ModelError, require_keras
from consumer.training.train import TrainSettings, format_report, train


def _parser() -> argparse.ArgumentParser:
    defaults = TrainSettings(output=Path("unused"))
    parser = argparse.ArgumentParser(
        prog="python -m consumer train",
        description=(
            "Train the reference LSTM (no Flatten; every prefix length) on synthetic sequences "
            "and save it as .keras; prints validation accuracy and ROC AUC per prefix length."
        ),
    )
    parser.add_argument("--output", required=True, type=Path, help="where to save (.keras)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument(
        "--samples", type=int, default=defaults.samples, help="training sequences to generate"
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.output.suffix != ".keras":
        print(f"--output must end in .keras: {args.output}", file=sys.stderr)
        return 1
    if args.epochs < 1 or args.samples < 2:
        print("--epochs must be >= 1 and --samples >= 2", file=sys.stderr)
        return 1
    try:
        require_keras("training")
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = TrainSettings(
        output=args.output, epochs=args.epochs, seed=args.seed, samples=args.samples
    )
    try:
        report = train(settings)
    except OSError as error:
        print(f"cannot save the model: {error}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0
