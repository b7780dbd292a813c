"""Voting rules and greedy ensemble selection over member probability matrices."""
from __future__ import annotations

import numpy as np

from autocls.metrics import RANKING_METRICS, nll, within_standard_error


def soft_vote(member_probs: list[np.ndarray], weights=None) -> np.ndarray:
    """Weighted mean of the members' class probabilities.

    Example:
        >>> p = np.array([[0.7, 0.3], [0.2, 0.8]])
        >>> np.allclose(soft_vote([p, p, p]), p)
        True
    """
    weights = np.ones(len(member_probs)) if weights is None else np.asarray(weights, dtype=np.float64)
    stacked = np.stack(member_probs)
    return np.tensordot(weights / weights.sum(), stacked, axes=1)


def hard_vote(member_probs: list[np.ndarray], weights=None) -> np.ndarray:
    """Weighted share of votes per class (ties go to the higher mean probability)."""
    weights = np.ones(len(member_probs)) if weights is None else np.asarray(weights, dtype=np.float64)
    num_classes = member_probs[0].shape[1]
    votes = np.zeros_like(member_probs[0], dtype=np.float64)
    for w, p in zip(weights, member_probs):
        votes += w * np.eye(num_classes)[p.argmax(1)]
    votes = votes / weights.sum()
    # a tiny soft-vote term breaks ties without ever overturning a majority
    return votes + 1e-6 * soft_vote(member_probs, weights)


def greedy_selection(member_probs: list[np.ndarray], labels: np.ndarray, rounds: int = 25,
                     metric: str = "accuracy") -> np.ndarray:
    """Caruana et al. 2004: add, with replacement, the member that most improves the ensemble's val score.

    Starts from the best single member, so the result never scores below it on
    the data it was selected on.  ``metric`` is one of
    :data:`~autocls.metrics.RANKING_METRICS` or ``"nll"``.  Returns
    selection counts (the voting weights).
    """
    def score(p):
        return -nll(p, labels) if metric == "nll" else RANKING_METRICS[metric].score(p, labels)

    counts = np.zeros(len(member_probs))
    singles = [score(p) for p in member_probs]
    counts[int(np.argmax(singles))] = 1
    total = member_probs[int(np.argmax(singles))].astype(np.float64)
    best = max(singles)
    for _ in range(rounds - 1):
        scores = [score((total + p) / (counts.sum() + 1)) for p in member_probs]
        pick = int(np.argmax(scores))
        if scores[pick] < best - 1e-12:
            break  # every addition would make it worse
        counts[pick] += 1
        total += member_probs[pick]
        best = max(best, scores[pick])
    return counts


def greedy_or_even(member_probs: list[np.ndarray], labels: np.ndarray, rounds: int = 25,
                   metric: str = "accuracy") -> np.ndarray:
    """Greedy selection's weights (:func:`greedy_selection`), or an even vote of every member where that scores
    within one standard error of them on val (:func:`~autocls.metrics.within_standard_error`).

    Greedy selection keeps a member only where val shows it helping, and a small val split moves in steps of
    whole images: on a folder of 600 photos (48 val photos), a search's closing ensemble kept one of its three
    similar trials, and an even vote of them scored higher on 2,000 held-out photos.  So, as for test-time
    augmentation (:func:`autocls.ensemble.build.tta_by_val`), val overrules the prior (more members vote better)
    only by more than its noise; on thousands of val images a clearly weaker member still gets no vote.
    ``metric="nll"`` has no such band: greedy's weights.

    Example:
        >>> labels = np.array([0, 1] * 4)
        >>> def member(answers, p): return np.eye(2)[answers] * (2 * p - 1) + (1 - p)
        >>> a = member([0, 1, 0, 1, 0, 1, 1, 0], 0.8)  # 6 of 8 right
        >>> b = member([0, 0, 0, 1, 0, 1, 1, 0], 0.9)  # 5 of 8, and sure of its mistake
        >>> greedy_selection([a, b], labels).tolist()  # together 5 of 8: b never picked
        [25.0, 0.0]
        >>> greedy_or_even([a, b], labels).tolist()  # one image apart on 8: within val's noise
        [1.0, 1.0]
        >>> many_a, many_b, many_labels = np.tile(a, (100, 1)), np.tile(b, (100, 1)), np.tile(labels, 100)
        >>> greedy_or_even([many_a, many_b], many_labels).tolist()  # 100 of 800 images apart: beyond it
        [25.0, 0.0]
    """
    greedy = greedy_selection(member_probs, labels, rounds, metric)
    if metric == "nll":
        return greedy
    score = RANKING_METRICS[metric].score
    even = np.ones(len(member_probs))
    best = score(soft_vote(member_probs, greedy), labels)
    if within_standard_error(score(soft_vote(member_probs, even), labels), best, len(labels)):
        return even
    return greedy


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): temperature scaling applied to saved probabilities."""
    logits = np.log(np.clip(probs, 1e-12, None)) / temperature
    logits -= logits.max(1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(1, keepdims=True)


TEMPERATURE_RANGE = (0.05, 20.0)
FIT_ROWS = 20_000  # val images a temperature is fitted on at most


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising val NLL (Guo et al. 2017), searched on a log scale.

    Where every val prediction is right the NLL has no minimum: it falls without end as the temperature falls,
    and the fit sharpened the probabilities to its bound, 0.05.  Fitted so on the 129 of its 144 val images that
    a digits trial got right, its test predictions said 98% on average where 88% were right, 91% on the wrong
    ones (NLL 1.34).  Then each of the n labels counts as (n + 1) / (n + 2) of its class, the rest spread over the
    others, Laplace's estimate of how often a prediction is wrong where none of n were: 90%, 67% on the wrong
    ones (NLL 0.38; `pytest -s tests/test_ensemble.py -k all_right`).  (A prior on the log temperature did not
    hold it: a near-tie among the right answers kept paying for sharper.  The same smoothing where val has errors
    made airbench's fit on the digits less sure than right: its temperature 0.244 became 0.353, its test ECE 0.013
    became 0.019.)

    Example:
        >>> probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
        >>> round(fit_temperature(probs, np.array([0, 1, 0, 1])), 2)  # all four right: sharper, not to the bound
        0.56
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    n, k = probs.shape
    if n > FIT_ROWS:  # one number: a seeded sample fits it as well, in bounded memory (1,000 classes' val)
        rows = np.random.default_rng(0).choice(n, FIT_ROWS, replace=False)
        probs, labels, n = probs[rows], labels[rows], FIT_ROWS
    wrong_share = 1 / (n + 2) if n and (probs.argmax(1) == labels).all() else 0.0  # of each label, to the others
    log_probs = np.log(np.clip(probs.astype(np.float64), 1e-12, None))

    def loss(log_t: float) -> float:
        scaled = log_softmax(log_probs / np.exp(log_t), axis=1)
        own = scaled[np.arange(n), labels]
        others = (scaled.sum(1) - own) / max(k - 1, 1)
        return float(-((1 - wrong_share) * own + wrong_share * others).mean())

    res = minimize_scalar(loss, bounds=tuple(np.log(TEMPERATURE_RANGE)), method="bounded")
    return float(np.exp(res.x))
