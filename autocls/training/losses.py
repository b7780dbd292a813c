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


def inverse_frequency_weights(counts) -> torch.Tensor:
    """weight_c ∝ 1 / n_c, scaled to sum to the class count."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    weights = 1.0 / counts
    return torch.tensor(weights / weights.sum() * len(counts), dtype=torch.float32)


class SoftTargetLoss(nn.Module):
    """Cross-entropy or focal loss over soft targets (mixup/cutmix/label smoothing), with class weights.

    Targets are always probability rows, so one loss serves hard labels,
    smoothed labels and mixed labels alike.
    """

    def __init__(self, weight: torch.Tensor | None = None, focal_gamma: float = 0.0):
        super().__init__()
        self.register_buffer("weight", weight if weight is not None else None)
        self.focal_gamma = focal_gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        per_class = -target * logp
        if self.focal_gamma:
            per_class = per_class * (1.0 - logp.exp()).pow(self.focal_gamma)
        if self.weight is not None:
            per_class = per_class * self.weight
            # normalise by the targets' weight, as F.cross_entropy(weight=...) does
            return per_class.sum() / (target * self.weight).sum().clamp_min(1e-12)
        return per_class.sum(1).mean()


def build_loss(kind: str, class_counts, class_weighting: str = "none", beta: float = 0.9999,
               focal_gamma: float = 2.0) -> SoftTargetLoss:
    weight = None
    if class_weighting == "class_balanced":
        weight = class_balanced_weights(class_counts, beta)
    elif class_weighting == "inverse":
        weight = inverse_frequency_weights(class_counts)
    return SoftTargetLoss(weight, focal_gamma if kind == "focal" else 0.0)
