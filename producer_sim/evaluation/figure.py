"""report.png: scores by steps seen, probability trajectories, final-step probabilities by
class, end-to-end latency. Drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: no display needed

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from consumer.training.synthetic import TRAINED_LENGTH
from producer_sim.evaluation.scores import THRESHOLD, Evaluation

_POSITIVE = "#c0392b"
_NEGATIVE = "#2e6da4"
MIN_COUNT = 30


def draw(ev: Evaluation, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), dpi=100)
    try:
        _by_step(axes[0][0], ev)
        _trajectories(axes[0][1], ev)
        _final(axes[1][0], ev)
        _latency(axes[1][1], ev)
        auc = ev.final.roc_auc
        fig.suptitle(
            f"{ev.complete:,} sequences scored to their last step: final-step ROC AUC "
            + ("n/a" if auc is None else f"{auc:.3f}")
            + f", model {', '.join(ev.model_versions) or 'n/a'}",
            fontsize=13,
        )
        fig.tight_layout(rect=(0, 0, 1, 0.96))
        fig.savefig(path)
    finally:
        plt.close(fig)


def _by_step(ax: Axes, ev: Evaluation) -> None:
    # A step reached by a handful of sequences (long ones, duplicates) gives noisy scores.
    shown = [s for s in ev.by_step if s.count >= MIN_COUNT]
    steps = [s.step for s in shown]
    counts = ax.twinx()
    counts.bar(steps, [s.count for s in shown], color="#dddddd", width=0.6)
    counts.set_ylabel("sequences with a probability at this step", color="#888888")
    counts.tick_params(axis="y", colors="#888888")
    ax.set_zorder(counts.get_zorder() + 1)  # lines over the bars
    ax.patch.set_visible(False)
    auc = [s.roc_auc for s in shown]
    acc = [s.accuracy for s in shown]
    ax.plot(steps, [float("nan") if v is None else v for v in auc], "o-", label="ROC AUC")
    ax.plot(steps, [float("nan") if v is None else v for v in acc], "s--", label="accuracy")
    ax.axvline(TRAINED_LENGTH, color="#555555", linestyle=":", label="trained length")
    ax.set_ylim(0.4, 1.0)
    ax.set_xlabel("steps seen (samples of the sequence so far)")
    ax.set_ylabel("score (accuracy at threshold 0.5)")
    ax.set_title(f"Scores by steps seen (steps with {MIN_COUNT}+ sequences)")
    if steps:
        ax.set_xticks(steps)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def _trajectories(ax: Axes, ev: Evaluation) -> None:
    for t in ev.trajectories:
        positive = t.label == 1
        ax.plot(
            range(1, len(t.probabilities) + 1),
            t.probabilities,
            "o-" if positive else "s--",
            color=_POSITIVE if positive else _NEGATIVE,
            alpha=0.8,
        )
    ax.axhline(THRESHOLD, color="#555555", linestyle=":")
    ax.plot([], [], "o-", color=_POSITIVE, label="label 1")
    ax.plot([], [], "s--", color=_NEGATIVE, label="label 0")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("probability")
    ax.set_title("Probability as samples arrive (a few sequences)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")


def _final(ax: Axes, ev: Evaluation) -> None:
    negatives, positives = ev.final_probabilities
    bins = [i / 20 for i in range(21)]
    ax.hist(negatives, bins=bins, alpha=0.6, color=_NEGATIVE, label=f"label 0 ({len(negatives)})")
    ax.hist(positives, bins=bins, alpha=0.6, color=_POSITIVE, label=f"label 1 ({len(positives)})")
    ax.axvline(THRESHOLD, color="#555555", linestyle=":")
    f = ev.final
    text = "n/a" if f.roc_auc is None else f"ROC AUC {f.roc_auc:.3f}"
    if f.accuracy is not None:
        text += f"\naccuracy {f.accuracy:.3f}"
    ax.text(0.5, 0.95, text, transform=ax.transAxes, ha="center", va="top", fontsize=11)
    ax.set_xlabel("probability at the sequence's last step")
    ax.set_ylabel("sequences")
    ax.set_title("Final-step probabilities by label")
    ax.legend(loc="upper left")


def _latency(ax: Axes, ev: Evaluation) -> None:
    values = ev.latencies_ms
    lat = ev.latency
    ax.set_title("End-to-end latency (output timestamp - input ts)")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("outputs")
    if not values:
        ax.text(0.5, 0.5, "no outputs with ts", transform=ax.transAxes, ha="center")
        return
    ax.hist(values, bins=60, color="#7f8c8d")
    marks = (("p50", lat.p50_ms, "-"), ("p95", lat.p95_ms, "--"), ("p99", lat.p99_ms, ":"))
    for name, value, style in marks:
        if value is not None:
            ax.axvline(value, color="#222222", linestyle=style, label=f"{name} {value:.0f} ms")
    ax.legend(loc="upper right", title=f"max {lat.max_ms:.0f} ms")
