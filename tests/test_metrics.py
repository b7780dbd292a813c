"""The metrics (autocls.metrics), against scikit-learn's scorers where it has one."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, log_loss, top_k_accuracy_score

from autocls.metrics import (balanced_accuracy, expected_calibration_error, nll, per_class_accuracy, summary,
                             top_k_accuracy, weakest_classes)


def _probabilities(n=400, classes=10, seed=0, absent=()):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    labels = rng.integers(0, classes, n)
    labels = np.where(np.isin(labels, absent), (labels + 1) % classes, labels)  # classes with no image
    logits[np.arange(n), labels] += 1.5  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_accuracy_is_scikit_learns(k):
    probs, labels = _probabilities()
    assert top_k_accuracy(probs, labels, k) == pytest.approx(top_k_accuracy_score(labels, probs, k=k))


def test_balanced_accuracy_is_scikit_learns_also_with_classes_absent_from_the_labels():
    """A long-tailed val split may hold no image of a rare class that the model still predicts."""
    for absent in ((), (3,), (3, 7)):
        probs, labels = _probabilities(absent=absent)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns that y_pred has classes y_true lacks
            expected = balanced_accuracy_score(labels, probs.argmax(1))
        assert balanced_accuracy(probs, labels) == pytest.approx(expected)
        accuracy = per_class_accuracy(probs, labels, probs.shape[1])
        assert np.isnan(accuracy[list(absent)]).all() and not np.isnan(np.delete(accuracy, list(absent))).any()


def test_nll_is_scikit_learns_log_loss():
    probs, labels = _probabilities()
    assert nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=list(range(10))))


def test_expected_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy_per_bin():
    labels = np.zeros(4, dtype=int)
    # two images at 0.9 confidence, one right; two at 0.6, both right: |0.5 - 0.9| / 2 + |1.0 - 0.6| / 2
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    sure_and_right = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert expected_calibration_error(sure_and_right, np.zeros(2, dtype=int)) == 0.0


def test_summary_leaves_out_what_votes_and_few_classes_cannot_say():
    probs, labels = _probabilities()
    full = summary(probs, labels)
    assert full["top1"] == top_k_accuracy(probs, labels) and full["top5"] == top_k_accuracy(probs, labels, 5)
    votes = summary(probs, labels, votes=True)
    assert votes["top1"] == full["top1"] and votes["nll"] is votes["ece"] is votes["top5"] is None
    assert summary(probs[:, :5] / probs[:, :5].sum(1, keepdims=True), labels % 5)["top5"] is None


def test_weakest_classes_are_the_lowest_per_class_accuracies_with_their_counts():
    probs, labels = _probabilities(absent=(4,))
    classes = [f"c{i}" for i in range(10)]
    mean, weakest = weakest_classes(probs, labels, classes, k=3)
    accuracy = per_class_accuracy(probs, labels, 10)
    assert mean == pytest.approx(balanced_accuracy(probs, labels))
    assert [a for _, a, _ in weakest] == sorted(np.delete(accuracy, 4))[:3]
    assert all(n == (labels == classes.index(c)).sum() for c, _, n in weakest)
    assert "c4" not in [c for c, _, _ in weakest]  # no image of it: no accuracy to rank
