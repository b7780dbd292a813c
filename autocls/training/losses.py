"""Losses for balanced and long-tailed data."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def class_balanced_weights(counts, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al. 2019: weight_c ∝ (1 - beta) / (1 - beta^n_c), scaled to sum to the class count.

    Example:
        >>> class_balanced_weights([100, 10], beta=0.9).round(decimals=3)
        tensor([0.7890, 1.2110])
    """
    counts = np.asarray(counts, dtype=np.float64)
    effective = (1.0 - np.power(beta, counts)) / (1.0 - beta)
    weights = 1.0 / np.maximum(effective, 1e-12)
    weights = weights / weights.sum() * len(counts)
    return torch.tensor(weights, dtype=torch.float32)


def _seen_counts(counts) -> np.ndarray:
    """The class counts as floats, a class never seen counted as one image (its weight or prior stays finite)."""
    return np.maximum(np.asarray(counts, dtype=np.float64), 1.0)


def inverse_frequency_weights(counts) -> torch.Tensor:
    """weight_c ∝ 1 / n_c, scaled to sum to the class count."""
    weights = 1.0 / _seen_counts(counts)
    return torch.tensor(weights / weights.sum() * len(counts), dtype=torch.float32)


class SoftTargetLoss(nn.Module):
    """Cross-entropy or focal loss over soft targets (mixup/cutmix/label smoothing), with class weights.

    Targets are always probability rows, so one loss serves hard labels,
    smoothed labels and mixed labels alike.  With ``weight``, each image's loss
    weighs as its label's class, as Cui et al. 2019 weight it: the label is the
    target less label smoothing's uniform share (``label_smoothing``, the
    value the targets were smoothed with), a mixed label the blend of its two
    classes' weights.  With hard labels this is ``F.cross_entropy(weight=...)``.
    With ``logit_offset`` (``tau * log(class prior)``, see :func:`logit_adjustment_offset`) the loss sees the
    logits plus that offset, the logit-adjusted loss of Menon et al. 2021; the model's own logits, which
    evaluation and prediction use, then lean toward the rare classes.

    Example:
        >>> w = torch.tensor([0.1, 1.9])
        >>> logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
        >>> torch.isclose(SoftTargetLoss(w)(logits, F.one_hot(labels, 2).float()),
        ...               F.cross_entropy(logits, labels, weight=w))
        tensor(True)
    """

    def __init__(self, weight: torch.Tensor | None = None, focal_gamma: float = 0.0, label_smoothing: float = 0.0,
                 logit_offset: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else None)
        self.register_buffer("logit_offset", logit_offset if logit_offset is not None else None)
        self.focal_gamma = focal_gamma
        self.label_smoothing = label_smoothing

    def _labels(self, target: torch.Tensor) -> torch.Tensor:
        """The targets less label smoothing's uniform share: each image's label, or the blend of its two."""
        kept = 1.0 - self.label_smoothing  # 0: all-uniform targets, whose labels are gone
        return (target - self.label_smoothing / target.shape[1]) / kept if kept > 0 else target

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, scored = logits.float(), target  # scored: what the log-probabilities are scored against
        if self.logit_offset is not None:
            logits = logits + self.logit_offset
            if 0 < self.label_smoothing < 1:
                # Smoothed toward the prior, which is uniform smoothing of the model's own logits.  Uniform here put
                # a floor under every class that the offset lifted by the prior's ratio: at 100:1 and smoothing 0.2
                # the rarest class outscored an image's own, and the three commonest CIFAR-10-LT classes fell to
                # 13% (benchmarks/long_tailed.py, 2026-12-03).
                prior = self.logit_offset.softmax(0)
                scored = (1 - self.label_smoothing) * self._labels(target) + self.label_smoothing * prior
        logp = F.log_softmax(logits, dim=1)
        per_class = -scored * logp
        if self.focal_gamma:
            per_class = per_class * (1.0 - logp.exp()).pow(self.focal_gamma)
        per_image = per_class.sum(1)
        if self.weight is None:
            return per_image.mean()
        # Weighting each class's term instead (as F.cross_entropy(weight=...) does with probability targets) let a
        # smoothed target's rare-class entries outweigh its own class: at a 100:1 imbalance and smoothing 0.2, the
        # most frequent classes fell to 0-10% test accuracy (benchmarks/long_tailed.py, 2026-12-03).
        image_weight = self._labels(target) @ self.weight
        return (per_image * image_weight).sum() / image_weight.sum().clamp_min(1e-12)


def logit_adjustment_offset(counts, tau: float = 1.0) -> torch.Tensor:
    """``tau * log(prior)`` of each class, the offset of Menon et al. 2021's logit-adjusted loss.

    Written here because neither timm nor torch has it: a line on the class counts.  A class never seen
    gets the prior of one image, so its offset stays finite.

    Example:
        >>> logit_adjustment_offset([90, 10]).exp()
        tensor([0.9000, 0.1000])
    """
    counts = _seen_counts(counts)
    return torch.tensor(tau * np.log(counts / counts.sum()), dtype=torch.float32)


# Each loss and class weighting is declared once: build_loss builds from these tables and the recipe's check
# (config.CHOICES) reads its names from them, as the optimizers and schedules are (training/optim.py).
LOSSES = ("ce", "focal")  # cross-entropy, and focal loss (Lin et al. 2017): cross-entropy at focal_gamma 0
CLASS_WEIGHTINGS = {
    "none": lambda counts, beta: None,
    "inverse": lambda counts, beta: inverse_frequency_weights(counts),
    "class_balanced": class_balanced_weights,
}


def build_loss(kind: str, class_counts, class_weighting: str = "none", beta: float = 0.9999,
               focal_gamma: float = 2.0, label_smoothing: float = 0.0, logit_adjustment: float = 0.0) -> SoftTargetLoss:
    """The training loss (of :data:`LOSSES`, weighted by one of :data:`CLASS_WEIGHTINGS`); ``label_smoothing`` is
    the smoothing the targets carry (see :class:`SoftTargetLoss`), ``logit_adjustment`` the tau of the
    logit-adjusted loss (0: none).

    Example:
        >>> uncertain, one_hot = torch.zeros(2, 2), torch.eye(2)  # p = 0.5 for each image's class
        >>> round(build_loss("ce", [100, 10])(uncertain, one_hot).item(), 4)  # log 2
        0.6931
        >>> round(build_loss("focal", [100, 10], focal_gamma=2.0)(uncertain, one_hot).item(), 4)  # (1 - p)^2 log 2
        0.1733
    """
    weight = CLASS_WEIGHTINGS[class_weighting](class_counts, beta)
    offset = logit_adjustment_offset(class_counts, logit_adjustment) if logit_adjustment else None
    return SoftTargetLoss(weight, focal_gamma if kind == "focal" else 0.0, label_smoothing, offset)
