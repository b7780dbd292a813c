"""Optimizer, learning-rate schedule and weight-averaging factories.

Every schedule is stepped once per batch (``steps_per_epoch`` known up
front) so warm-up and one-cycle are smooth; reduce-on-plateau is stepped per
evaluation by the trainer.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import torch
from torch.optim import lr_scheduler


# Each optimizer and schedule is declared once, in OPTIMIZERS and SCHEDULERS below: the factories build from these
# tables and the recipe's check (config.CHOICES) reads its names from them, as timm's optimizer registry serves its
# factory and its checks from one table.  A name added in one place only cannot be accepted and then fail mid-run.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda cfg, groups: torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                                               nesterov=cfg.nesterov and cfg.momentum > 0),
    "adam": lambda cfg, groups: torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)),
    "adamw": lambda cfg, groups: torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)),
    "rmsprop": lambda cfg, groups: torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, eps=1e-3),
}


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """The recipe's optimizer (of :data:`OPTIMIZERS`) over ``params``; norms and biases learn at ``lr * bias_lr_scale``.

    Example:
        >>> from autocls.training import TrainConfig
        >>> build_optimizer(TrainConfig(optimizer="adamw", lr=3e-3), torch.nn.Linear(4, 2).parameters()).defaults["lr"]
        0.003
    """
    # No weight decay on norms and biases: standard for every recipe in the zoo.
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr * cfg.bias_lr_scale}]
    optimizer = OPTIMIZERS[cfg.optimizer](cfg, groups)
    if cfg.lookahead:
        from timm.optim import Lookahead

        # every 5 steps the weights move halfway back to their slow copy, as airbench's every-5-steps average
        optimizer = Lookahead(optimizer, alpha=0.5, k=5)
    return optimizer


def build_scheduler(cfg, optimizer, steps_per_epoch: int, total_steps: int | None = None):
    """A per-batch schedule (of :data:`SCHEDULERS`) over ``total_steps`` (default: the epochs'), or a
    ReduceLROnPlateau that the trainer steps per evaluation."""
    total = max(1, total_steps or cfg.epochs * steps_per_epoch)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    return SCHEDULERS[cfg.scheduler](cfg, optimizer, total, warmup, steps_per_epoch)


def _after_warmup(optimizer, main, warmup: int):
    """``main`` after a linear ramp over ``warmup`` steps (none at 0)."""
    if warmup <= 0:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _peaks(optimizer) -> list[float]:
    # per group: norms and biases may have their own (one float would set every group's peak to it)
    return [g["lr"] for g in optimizer.param_groups]


# cycle_momentum=False in the cyclic schedules: torch's default would overwrite the momentum (or Adam's
# beta1) that the search sampled, and the study would record one that never ran.
def _one_cycle(cfg, optimizer, total: int, warmup: int, steps_per_epoch: int):
    pct_start = min(0.9, max(warmup / total, 0.3, 2.5 / total))  # torch divides by zero below 2 warm-up steps
    return lr_scheduler.OneCycleLR(optimizer, max_lr=_peaks(optimizer), total_steps=total, pct_start=pct_start,
                                   cycle_momentum=False)  # its own warm-up


def _triangle(cfg, optimizer, total: int, warmup: int, steps_per_epoch: int):
    """airbench94's: 0.2x the peak, linearly up to it at 23%, down to 0.07x."""
    pct_start = min(0.9, max(warmup / total, 0.23, 2.5 / total))
    return lr_scheduler.OneCycleLR(optimizer, max_lr=_peaks(optimizer), total_steps=total, pct_start=pct_start,
                                   anneal_strategy="linear", div_factor=1 / 0.2, final_div_factor=0.2 / 0.07,
                                   cycle_momentum=False)


def _cyclic(cfg, optimizer, total: int, warmup: int, steps_per_epoch: int):
    half = max(1, (total - warmup) // 8)  # triangular2 over 4 cycles
    peaks = _peaks(optimizer)
    main = lr_scheduler.CyclicLR(optimizer, base_lr=[lr / 25 for lr in peaks], max_lr=peaks, step_size_up=half,
                                 mode="triangular2", cycle_momentum=False)
    return _after_warmup(optimizer, main, warmup)


def _plateau(cfg, optimizer, total: int, warmup: int, steps_per_epoch: int):
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.gamma, patience=2)


def _decaying(factor: Callable[[Any, int, int], Callable[[int], float]]):
    """A schedule of the peak times ``factor(cfg, steps, steps_per_epoch)(step)`` after the warm-up's steps."""

    def build(cfg, optimizer, total: int, warmup: int, steps_per_epoch: int):
        main = lr_scheduler.LambdaLR(optimizer, factor(cfg, max(1, total - warmup), steps_per_epoch))
        return _after_warmup(optimizer, main, warmup)

    return build


def _cosine(cfg, steps: int, steps_per_epoch: int):
    return lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))


def _multistep(cfg, steps: int, steps_per_epoch: int):
    marks = [m * cfg.epochs * steps_per_epoch for m in cfg.milestones]
    return lambda s: cfg.gamma ** sum(s >= m for m in marks)


def _step(cfg, steps: int, steps_per_epoch: int):
    return lambda s: cfg.gamma ** (s // max(1, cfg.step_size * steps_per_epoch))


SCHEDULERS: dict[str, Callable] = {
    "cosine": _decaying(_cosine),
    "multistep": _decaying(_multistep),
    "step": _decaying(_step),
    "onecycle": _one_cycle,
    "triangle": _triangle,
    "cyclic": _cyclic,
    "plateau": _plateau,
    "constant": _decaying(lambda cfg, steps, steps_per_epoch: lambda s: 1.0),
}


def continued_scheduler(cfg, optimizer, steps_per_epoch: int, peak_lrs: list[float], steps_done: int,
                        total_steps: int | None = None):
    """The schedule of ``cfg`` (a new ``epochs``, or ``total_steps``) as if it had run from the start: ``steps_done`` in.

    For a run whose length changes in flight (a budgeted trial re-fitted to its
    measured epoch time): the remaining steps follow the new schedule, which
    warms up, peaks and anneals over the new length.  ``peak_lrs`` are the
    groups' learning rates before the first schedule was built.

    Example:
        >>> sched = continued_scheduler(replace(cfg, epochs=8), opt, 100, peaks, steps_done=100)  # doctest: +SKIP
    """
    for group, lr in zip(optimizer.param_groups, peak_lrs):
        group["lr"] = lr  # the schedules read their peaks from here
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch, total_steps)
    with warnings.catch_warnings():
        # torch warns of a schedule stepped with no optimizer step between: replaying the steps taken is the point
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps_done):
            scheduler.step()
    return scheduler


class RampedAverage:
    """airbench94's weight averaging: every ``every`` steps the model's weights and BatchNorm statistics
    become ``decay * average + (1 - decay) * current``, copied back into the model, with ``decay`` ramping
    from 0 to ``base ** every`` as ``(step / total_steps) ** power``: free steps early, a strong average late.

    Written here because neither of timm's fits: ``Lookahead`` pulls the weights back at a fixed rate from
    the first step (half-way every 5 steps), which cost airbench's seed 0.8 points against no averaging at
    all (85.8% and 86.6%, half width, 9 epochs of 40k CIFAR-10 JPEGs on a CPU, 2026-12-01; 87.2% with this
    and the triangle schedule), and ``ModelEmaV3`` keeps its average apart from the model being trained.
    The trainer calls :meth:`sync` at the end of an epoch, so the model it evaluates and checkpoints is the
    average; a resumed run starts a new average from it.

    Example:
        >>> average = RampedAverage(model, total_steps=len(loader) * epochs)  # doctest: +SKIP
        >>> for x, y in loader:  # doctest: +SKIP
        ...     optimizer.step()
        ...     average.update()
        >>> average.sync()  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, total_steps: int, every: int = 5, base: float = 0.95,
                 power: float = 3.0):
        self.model, self.every, self.base, self.power = model, every, base, power
        self.step, self.total_steps = 0, total_steps  # the trainer moves both when a run resumes or is re-fitted
        self.average: list[torch.Tensor] | None = None

    def _tensors(self) -> list[torch.Tensor]:
        return [t for t in self.model.state_dict().values() if t.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """After each optimizer step."""
        self.step += 1
        if self.step % self.every:
            return
        if self.average is None:
            self.average = [t.detach().clone() for t in self._tensors()]
            return
        decay = self.base ** self.every * min(1.0, self.step / max(1, self.total_steps)) ** self.power
        for average, current in zip(self.average, self._tensors()):
            average.lerp_(current, 1 - decay)
            current.copy_(average)

    @torch.no_grad()
    def sync(self) -> None:
        """The average into the model, dropping the steps since the last update."""
        for average, current in zip(self.average or [], self._tensors()):
            current.copy_(average)
