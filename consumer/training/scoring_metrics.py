"""Scores of probabilistic predictions against 0/1 labels, in numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def roc_auc(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (Mann-Whitney U from average ranks). ValueError when `y`
    lacks one of the two classes, for which the area is undefined."""
    labels = np.asarray(y).reshape(-1)
    scores = np.asarray(p, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"y and p differ in length: {labels.shape[0]} != {scores.shape[0]}")
    positive = labels == 1
    if not np.all(positive | (labels == 0)):
        raise ValueError("labels must be 0 or 1")
    n_pos = int(positive.sum())
    n_neg = labels.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs at least one positive and one negative label")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Tied scores share the average of the 1-based ranks they span.
    upper = np.cumsum(counts)
    average_rank = upper - (counts - 1) / 2.0
    rank_sum = float(average_rank[inverse][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def accuracy(y: npt.ArrayLike, p: npt.ArrayLike, threshold: float = 0.5) -> float:
    """Share of predictions on the right side of `threshold` (p >= threshold means label 1)."""
    labels = np.asarray(y).reshape(-1)
    scores = np.asarray(p, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape or labels.shape[0] == 0:
        raise ValueError("y and p must be non-empty and of equal length")
    return float(np.mean((scores >= threshold) == (labels == 1)))
