"""Classification metrics over class-probability matrices (numpy): the trainer's, the ensemble's and the report's.

Top-k, balanced accuracy and NLL are scikit-learn's scorers (``top_k_accuracy_score``, ``balanced_accuracy_score``,
``log_loss``; ``tests/test_metrics.py`` holds them to it) written in numpy, because a trial's worker scores val
every epoch and does not import scikit-learn: its import cost each worker about a second (RESULTS.md, "Search
overhead").  The report's AUC, computed once, is scikit-learn's own.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean())


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """The mean of the per-class accuracies (recalls) over the classes in ``labels``: scikit-learn's
    ``balanced_accuracy_score`` of the predicted classes, where a rare class weighs as much as a common one.

    Example:
        >>> import numpy as np
        >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
        >>> top_k_accuracy(probs, np.array([0, 0, 0, 1])), balanced_accuracy(probs, np.array([0, 0, 0, 1]))
        (0.75, 0.5)
    """
    return float(np.nanmean(per_class_accuracy(probs, labels, probs.shape[1])))


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """How far an accuracy measured on ``n`` images moves by chance: its binomial standard error,
    ``sqrt(p(1-p)/n)``.  5.6 points at 80 images and 50%, 0.4 at 5,000 images and 90%; a user's folder of a few
    hundred photos leaves a val split where it is several points, so a choice made on val (which epoch a run
    keeps, which test-time augmentation an ensemble uses) gives way to a prior within it.  Balanced accuracy
    moves more than this on a long-tailed split (its rare classes have few images): the band is then narrower
    than its noise, and val still decides.

    Example:
        >>> round(accuracy_standard_error(0.5, 80), 4), round(accuracy_standard_error(0.9, 5000), 4)
        (0.0559, 0.0042)
    """
    return math.sqrt(accuracy * (1 - accuracy) / max(n, 1))


def within_standard_error(score: float, highest: float, n: int) -> bool:
    """Whether ``score`` is within one standard error (:func:`accuracy_standard_error`) of ``highest``, both on the
    same ``n`` images: the band inside which a choice made on val follows its prior (the epoch trained longer,
    the mode with more views, the even vote) rather than the higher score.

    Example:
        >>> within_standard_error(0.45, 0.475, n=80), within_standard_error(0.85, 0.90, n=5000)
        (True, False)
    """
    return score >= highest - accuracy_standard_error(highest, n)


class RankingMetric(NamedTuple):
    """A metric a search ranks trials by, and everywhere it goes by a name of its own."""

    score: Callable[[np.ndarray, np.ndarray], float]  # (probabilities, labels) -> higher is better
    label: str  # as the output names it
    summary_key: str  # its key in summary()
    objective: str  # a space's objective, and each evaluation's result key
    best_key: str  # the best epoch's, in a trial's results and attributes


# What a search may rank trials by (its first objective; ASHA, each trial's best epoch and the ensemble's
# selection with it), by scikit-learn's scorer names.
RANKING_METRICS = {
    "accuracy": RankingMetric(top_k_accuracy, "top-1", "top1", "val_acc", "best_val_acc"),
    "balanced_accuracy": RankingMetric(balanced_accuracy, "balanced accuracy", "balanced", "val_balanced_acc",
                                       "best_val_balanced_acc"),
}


def ranking_metric_named(name: str) -> RankingMetric:
    """The :data:`RANKING_METRICS` entry of ``name``; another name is a one-line UserError.

    Example:
        >>> ranking_metric_named("balanced_accuracy").objective
        'val_balanced_acc'
    """
    from autocls.errors import UserError

    if name not in RANKING_METRICS:
        raise UserError(f"unknown metric '{name}'; choose from {', '.join(RANKING_METRICS)}")
    return RANKING_METRICS[name]


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    confidence, predicted = probs.max(1), probs.argmax(1)
    correct = predicted == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def summary(probs: np.ndarray, labels: np.ndarray, votes: bool = False) -> dict[str, float | None]:
    """top-1, balanced accuracy, top-5, NLL and ECE in one dict.

    With ``votes`` (hard voting's vote shares, not probabilities) only top-1
    and balanced accuracy mean something: top-5, NLL and ECE are None (not applicable).  So is
    top-5 with five classes or fewer, where it is 100% whatever the model.

    Example:
        >>> import numpy as np
        >>> summary(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]))["top5"] is None
        True
    """
    ranked = {"top1": top_k_accuracy(probs, labels, 1), "balanced": balanced_accuracy(probs, labels)}
    if votes:
        return {**ranked, "top5": None, "nll": None, "ece": None}
    return {**ranked, "top5": top_k_accuracy(probs, labels, 5) if probs.shape[1] > 5 else None,
            "nll": nll(probs, labels), "ece": expected_calibration_error(probs, labels)}


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    predicted = probs.argmax(1)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            out[c] = (predicted[mask] == c).mean()
    return out


def weakest_classes(probs: np.ndarray, labels: np.ndarray, classes: list[str],
                    k: int = 3) -> tuple[float, list[tuple[str, float, int]]]:
    """Balanced accuracy (the mean of the per-class accuracies), and the ``k`` classes of lowest accuracy with
    their image counts, worst first; classes without images in ``labels`` are left out of both.

    Top-1 hides a rare class that is never predicted wherever the test images
    are as uneven as the training ones.

    Example:
        >>> import numpy as np
        >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
        >>> weakest_classes(probs, np.array([0, 0, 0, 1]), ["common", "rare"], k=1)
        (0.5, [('rare', 0.0, 1)])
    """
    accuracy = per_class_accuracy(probs, labels, len(classes))
    counts = np.bincount(labels, minlength=len(classes))
    present = np.flatnonzero(counts > 0)
    order = present[np.argsort(accuracy[present], kind="stable")][:k]
    return (float(accuracy[present].mean()),
            [(classes[c], float(accuracy[c]), int(counts[c])) for c in order])


def per_class_auc(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-vs-rest ROC AUC per class (NaN where a class is absent)."""
    from sklearn.metrics import roc_auc_score

    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        positives = labels == c
        if 0 < positives.sum() < len(labels):
            out[c] = roc_auc_score(positives, probs[:, c])
    return out
