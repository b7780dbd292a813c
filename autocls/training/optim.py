"""Optimizer and learning-rate schedule factories.

Every schedule is stepped once per batch (``steps_per_epoch`` known up
front) so warm-up and one-cycle are smooth; reduce-on-plateau is stepped per
evaluation by the trainer.
"""
from __future__ import annotations

import math

import torch
from torch.optim import lr_scheduler


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    # No weight decay on norms and biases: standard for every recipe in the zoo.
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, eps=1e-3)
    raise ValueError(cfg.optimizer)


def build_scheduler(cfg, optimizer, steps_per_epoch: int):
    """A per-batch schedule, or a ReduceLROnPlateau that the trainer steps per evaluation."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if cfg.scheduler == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.gamma, patience=2)
    # cycle_momentum=False: torch's default would overwrite the momentum (or Adam's
    # beta1) that the search sampled, and the study would record one that never ran.
    if cfg.scheduler == "onecycle":  # has its own warm-up
        pct_start = min(0.9, max(warmup / total, 0.3, 2.5 / total))  # torch divides by zero below 2 warm-up steps
        return lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=pct_start,
                                       cycle_momentum=False)
    if cfg.scheduler == "cyclic":
        half = max(1, (total - warmup) // 8)  # triangular2 over 4 cycles
        main = lr_scheduler.CyclicLR(optimizer, base_lr=cfg.lr / 25, max_lr=cfg.lr, step_size_up=half,
                                     mode="triangular2", cycle_momentum=False)
    else:
        main = lr_scheduler.LambdaLR(optimizer, _decay_fn(cfg, total - warmup, steps_per_epoch))
    if warmup <= 0:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _decay_fn(cfg, steps: int, steps_per_epoch: int):
    steps = max(1, steps)
    if cfg.scheduler == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    if cfg.scheduler == "multistep":
        marks = [m * cfg.epochs * steps_per_epoch for m in cfg.milestones]
        return lambda s: cfg.gamma ** sum(s >= m for m in marks)
    if cfg.scheduler == "step":
        return lambda s: cfg.gamma ** (s // max(1, cfg.step_size * steps_per_epoch))
    return lambda s: 1.0  # constant
