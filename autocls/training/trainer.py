"""Train one config, top to bottom.

The whole uint8 dataset sits on the training device; each step slices a batch
by index and augments it there (:class:`autocls.data.loader.DeviceLoader`), so
there is no DataLoader, no worker process and no per-sample Python between
the optimizer steps.  ``train`` reads as airbench's ``main`` does: set up, then
per epoch train, evaluate, keep the best, checkpoint, report; what the run
leaves on disk goes through :class:`autocls.artifacts.TrialArtifacts`.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from autocls.artifacts import (ArtifactStore, TrialArtifacts, config_hash, load_model_state, load_weights,
                               weights_revision)
from autocls.data.augment import BatchAugment, shrunk
from autocls.data.loader import DeviceLoader, passes_per_epoch
from autocls.data.splits import DataSplits, prepare_data
from autocls.inference import fast_bf16, predict_proba, resolve_device
from autocls.metrics import balanced_accuracy, ranking_metric_named, top_k_accuracy, within_standard_error
from autocls.models.registry import model_from_config
from autocls.training.config import Runtime, TrainConfig
from autocls.training.losses import build_loss
from autocls.training.optim import RampedAverage, build_optimizer, build_scheduler, continued_scheduler

STATUSES = ("complete", "diverged", "time_budget")
FIT_TO_DATA_IMAGES = 5000  # as airbench estimates its whitening: ample for a 12x12 covariance


@dataclass
class TrainResult:
    """What a run leaves behind; ``status`` is one of :data:`STATUSES`."""

    status: str
    best_val_acc: float
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    test_acc: float | None = None
    num_params: int = 0
    out_dir: str | None = None
    reason: str = ""
    resumed_from_epoch: int = 0
    test_balanced_acc: float | None = None  # the mean of the per-class accuracies on test

    @property
    def best(self) -> dict:
        """The best epoch's evaluation (``val_acc``, ``val_balanced_acc``, ...; {} without one)."""
        return _evaluation_of(self.history, self.best_epoch)


def _evaluation_of(history: list[dict], epoch: int) -> dict:
    return next((m for m in history if m["epoch"] == epoch), {})


@dataclass
class _Run:
    """Everything set up once per run: model, data on the device, loss, optimizer, schedule."""

    model: torch.nn.Module
    forward: torch.nn.Module  # the model, compiled or not
    loader: DeviceLoader
    augment: BatchAugment
    val_x: torch.Tensor
    criterion: torch.nn.Module
    mixup: object | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    average: RampedAverage | None
    peak_lrs: list[float]  # each group's learning rate before a schedule: what a re-fitted schedule starts from
    per_batch_schedule: bool
    amp: bool
    channels_last: bool
    num_params: int


class _Length(NamedTuple):
    """A run's length: ``epochs``, the last of ``last_epoch_steps`` steps when shortened (0: a whole epoch)."""

    epochs: int
    last_epoch_steps: int = 0

    def epoch_steps(self, epoch: int, steps_per_epoch: int) -> int:
        return self.last_epoch_steps if epoch == self.epochs and self.last_epoch_steps else steps_per_epoch

    def total_steps(self, steps_per_epoch: int) -> int:
        return (self.epochs - 1) * steps_per_epoch + self.epoch_steps(self.epochs, steps_per_epoch)


@dataclass
class _Progress:
    """What changes from epoch to epoch, and what a checkpoint restores."""

    epoch: int = 0
    best_acc: float = -1.0  # the best epoch's score by the run's metric (top-1 or balanced accuracy)
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    checkpoint_cost: float = 0.0  # seconds the last write of last.pt took (0: write at the next chance)
    since_checkpoint: float = 0.0  # training seconds since then
    length: _Length = _Length(0)  # the config's, or re-fitted to a time (train's fit_until); 0: not set yet

    @property
    def best(self) -> dict:
        """The best epoch's evaluation in the history ({} before the first)."""
        return _evaluation_of(self.history, self.best_epoch)


def _data_device(data: DataSplits, device: torch.device) -> torch.device:
    """The device the uint8 dataset lives on: the training device when it fits in half its free memory.

    Otherwise it stays in (pinned) host memory and each batch is sliced there
    and copied, so augmentation still runs on the GPU.
    """
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    size = sum(t.numel() * t.element_size() for t in (data.train_x, data.val_x))
    if size <= free // 2:
        return device
    data.train_x, data.val_x = data.train_x.pin_memory(), data.val_x.pin_memory()
    return torch.device("cpu")


def _set_up(cfg: TrainConfig, data: DataSplits, device: torch.device, compile_model: bool) -> _Run:
    channels_last = cfg.channels_last  # on CPU too: oneDNN's convolutions run 1.2-1.5x faster in NHWC
    data = replace(data, train_x=shrunk(data.train_x, cfg.image_size), val_x=shrunk(data.val_x, cfg.image_size))
    model = model_from_config(cfg.to_dict(), data.num_classes, in_chans=data.image_shape[0])
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    data_device = _data_device(data, device)
    augment = BatchAugment(data.mean, data.std, cfg.crop_padding, cfg.flip, cfg.cutout, cfg.auto_augment,
                           cfg.randaugment_magnitude, cfg.image_size)
    if hasattr(model, "fit_to_data"):  # data-dependent initialisation (airbench's whitening layer)
        # spread over the whole split: an ImageFolder's images are stored class by class
        every = max(1, len(data.train_x) // FIT_TO_DATA_IMAGES)
        model.fit_to_data(augment.normalize(data.train_x[::every][:FIT_TO_DATA_IMAGES].to(device)))
    loader = DeviceLoader(data.train_x.to(data_device), data.train_y, cfg.batch_size, augment, device,
                          balanced=cfg.weighted_sampling, passes=passes_per_epoch(len(data.train_y), cfg.epoch_images))
    counts = torch.bincount(data.train_y, minlength=data.num_classes)
    criterion = build_loss(cfg.loss, counts.numpy(), cfg.class_weighting, cfg.class_balanced_beta, cfg.focal_gamma,
                           cfg.label_smoothing, cfg.logit_adjustment)
    mixup = None
    if cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, prob=cfg.mixup_prob,
                      label_smoothing=cfg.label_smoothing, num_classes=data.num_classes)
    optimizer = build_optimizer(cfg, model.parameters())
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    scheduler = build_scheduler(cfg, optimizer, len(loader))
    average = RampedAverage(model, cfg.epochs * len(loader)) if cfg.ramped_average else None
    return _Run(model, torch.compile(model) if compile_model else model, loader, augment, data.val_x.to(data_device),
                criterion.to(device), mixup, optimizer, scheduler, average, peak_lrs,
                not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau), cfg.amp and fast_bf16(device),
                channels_last, sum(p.numel() for p in model.parameters()))


def _targets(run: _Run, x: torch.Tensor, y: torch.Tensor, num_classes: int, label_smoothing: float):
    if run.mixup is not None:
        return run.mixup(x, y)
    target = F.one_hot(y, num_classes).float()
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / num_classes
    return x, target


def _train_epoch(run: _Run, cfg: TrainConfig, num_classes: int, deadline: float | None,
                 reserve: Callable[[], float], max_steps: int,
                 refit: tuple[tuple[int, ...], Callable[[float, int], int]] | None = None,
                 step_seconds: float = 0.0, on_step: Callable[[int, int], None] | None = None) -> tuple[float, int]:
    """One epoch of ``max_steps`` steps at most; returns (mean loss, steps taken).

    With a ``deadline`` (a ``time.time()``), the epoch ends early at the first
    step whose time (the slowest recent one's) would leave less than
    ``reserve()`` before it.  The epoch's first step is a warm-up, not timed:
    until the second, ``step_seconds`` (the previous epoch's mean step) stands
    for a step, or the first step's time before any.  With ``refit``
    (``(counts, fit)``), after each of those step counts the epoch's length
    becomes ``fit(mean seconds per step, count)``.  ``on_step(steps taken, steps planned)`` after each step.
    """
    run.model.train()
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    loss_sum = torch.zeros((), device=next(run.model.parameters()).device)
    if deadline is not None:
        # The reserve's one-off timing of a forward pass, before the steps are timed: between them it counted as
        # theirs (`autocls train ./train --time-budget 3m`, ResNet-18 on 2 CPU cores, took 38 steps where 83 fit
        # and ended 64 s early, 2026-12-04).
        reserve()
    # A run's first step costs several times a step (3 s where later ones took 0.5 s, in a fresh process on
    # 2 CPU cores): as the step time of the rule below it stopped a 1-minute search's only trial after one
    # step, at chance (2026-12-01).
    steps, first, slowest, last = 0, 0.0, step_seconds, time.time()
    warm = last
    for x, y in run.loader:
        if steps >= max_steps:
            break
        if deadline is not None and steps and last + (slowest or first) + reserve() > deadline:
            break
        x, target = _targets(run, x, y, num_classes, cfg.label_smoothing)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=run.amp):
            loss = run.criterion(run.forward(x.contiguous(memory_format=memory_format)), target)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        if run.per_batch_schedule:
            run.scheduler.step()
        if run.average is not None:
            run.average.update()
        loss_sum += loss.detach()
        steps += 1
        if refit is not None and steps in (1, *refit[0]):
            loss_sum.item()  # waits for the device: the clock then times steps, not their launches
            if steps == 1:
                warm = time.time()
            else:
                began = time.time()
                max_steps = refit[1]((began - warm) / (steps - 1), steps)
                # the re-fit times a forward pass: not a step's time, for later re-fits nor the deadline's rule
                spent = time.time() - began
                warm, last = warm + spent, last + spent
        if on_step is not None:
            on_step(steps, max_steps)
        if deadline is not None:  # the clock only matters with a deadline; reading it costs nothing next to a step
            now = time.time()
            if steps == 1:
                first = now - last
            else:
                slowest = max(slowest * 0.9, now - last)
            last = now
    if hasattr(run.optimizer, "sync_lookahead"):  # evaluate and keep the slow weights, as timm's train.py does
        run.optimizer.sync_lookahead()
    if run.average is not None:  # evaluate and keep the average, as airbench does
        run.average.sync()
    return float(loss_sum) / max(1, steps), steps  # one device sync per epoch


def _evaluate(run: _Run, data: DataSplits) -> tuple[np.ndarray, float, float, float]:
    """Val class probabilities, top-1, balanced accuracy and NLL."""
    probs = predict_proba(run.forward, run.val_x, run.augment.normalize, channels_last=run.channels_last, amp=run.amp)
    val_loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), data.val_y))
    probs, labels = probs.numpy(), data.val_y.numpy()
    return probs, top_k_accuracy(probs, labels), balanced_accuracy(probs, labels), val_loss


def _checkpoint_due(share: float, progress: _Progress) -> bool:
    # last.pt is for resuming an interrupted run only, and a full write of
    # model + optimizer takes ~0.1-0.2 s for a ResNet-9 on CPU: written every
    # epoch it would cost a fast trial several percent.  So it is written when
    # the training time since the last write is at least write_time /
    # share (Runtime.checkpoint_share): at most that share of training goes to it, and an
    # interruption loses at most write_time / share of training.
    return share >= 1 or progress.since_checkpoint * share >= progress.checkpoint_cost


def _save_checkpoint(artifacts: TrialArtifacts, run: _Run, progress: _Progress, device: torch.device) -> None:
    written = time.perf_counter()
    artifacts.save_checkpoint(epoch=progress.epoch, model=run.model.state_dict(),
                              weights_revision=weights_revision(run.model),
                              optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                              rng=torch.get_rng_state(), best_acc=progress.best_acc, best_epoch=progress.best_epoch,
                              history=progress.history, epochs=progress.length.epochs,
                              last_epoch_steps=progress.length.last_epoch_steps,
                              **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}))
    progress.checkpoint_cost, progress.since_checkpoint = time.perf_counter() - written, 0.0


def _restore(state: dict, run: _Run, cfg: TrainConfig, artifacts: TrialArtifacts, device: torch.device) -> _Progress:
    load_model_state(run.model, state["model"], artifacts.location,
                     remedy="remove that folder, or train into another, to start afresh",
                     saved_revision=state.get("weights_revision", 1))
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    length = _Length(state.get("epochs", cfg.epochs), state.get("last_epoch_steps", 0))
    if length != _Length(cfg.epochs):  # re-fitted before the checkpoint: a schedule's length is not in its state
        _refit_schedule(run, cfg, length)
    torch.set_rng_state(state["rng"].cpu())  # map_location moved it; the generator wants a CPU tensor
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)  # batch order is drawn on the GPU
    progress = _Progress(state["epoch"], state["best_acc"], state["best_epoch"], state["history"], length=length)
    if artifacts.best_epoch() != progress.best_epoch:
        progress.best_acc = -1.0  # the saved best is from epochs past the checkpoint: the next evaluation replaces it
    return progress


# Epochs after which a run fitted to a time may grow or shrink its length freely; after them it grows by an
# epoch at most per re-fit.
FREE_REFITS = 2
# The steps' time a re-fitted run leaves unplanned: a deadline stops a run by its slowest recent step.  Four
# steps' time still let 2 of 12 four-second test runs (17-step epochs) be cut a step before their end, eight
# none of 20 (twice), when the reserve also grew with that step; half an epoch instead left 40 s of a 5-minute
# search unused (70-step epochs, 2026-12-01).
REFIT_MARGIN_STEPS = 8


# The share of the time a run fills that its caller's optional closing passes may take (``train``'s closing_passes
# past the first).  `autocls train` keeps flip-translate's four more views of val and test within it, and the flip
# pass always: flip-translate scored +0.40 and +0.38 over flip on test, on the same weights, after 5- and 20-minute
# runs on the shared CIFAR-10 photos, and +0.32 to +0.44 after budget.py's four 20-minute runs of (b); at 2.5%, a
# search's closing share, the 20-minute run's four views were not kept (estimated at 33 s of 30 with the reserve's
# 1.25x margin counted in, which the share no longer counts: 26 s; they took ~21 s), and their seconds would have
# trained 2.7% of its 18 epochs at the end of its schedule (benchmarks/run_tta.py, RESULTS.md).
CLOSING_SHARE = 0.05


def closing_reserve(evaluation_seconds: float, views_seconds: float = 0.0) -> float:
    """Seconds a run keeps before its deadline to evaluate val, predict test and write it all, and for its caller's
    views of val and test after it.

    ``evaluation_seconds``: a forward pass over val and test; the rest is margin.  ``views_seconds``: the caller's
    passes (test-time augmentation), kept without a margin: the caller times them again and leaves out what no
    longer fits, where the run must end by its deadline.  With the 1.25x margin on them too, a 2-minute search's
    trial kept 35 s for its end where its own pass and the closing's five views took ~21 s (2026-12-07).
    The budget plan counts the same reserve when it decides whether a trial can start.
    The margin was 1.5x when the pass was guessed from a training step's time; with the pass timed, 1.25x
    ended `autocls train ./train --time-budget 3m` (ResNet-18, 2 CPU cores) at 173 s of 180 (2026-12-04).
    """
    return 1.0 + 1.25 * evaluation_seconds + views_seconds


def _refit_schedule(run: _Run, cfg: TrainConfig, length: _Length) -> None:
    """The run's schedule stretched or squeezed to ``length``, continuing from the steps it has taken."""
    if run.per_batch_schedule:  # reduce-on-plateau has no length
        run.scheduler = continued_scheduler(replace(cfg, epochs=length.epochs), run.optimizer, len(run.loader),
                                            run.peak_lrs, run.scheduler.last_epoch,
                                            total_steps=length.total_steps(len(run.loader)))


def _refitted_length(epoch: int, step_seconds: float, steps_per_epoch: int, eval_seconds: float,
                     seconds_left: float, max_epochs: int, planned: _Length | None = None) -> _Length:
    """The run's length when ``seconds_left`` remain after ``epoch``: the whole epochs that fit, and a
    shorter last one in what is left when it is worth a quarter of an epoch.  When no whole epoch fits, one
    more epoch of the steps that fit, at least an eighth of an epoch: its schedule anneals in those steps,
    worth more than the time (an unannealed one-cycle run stops at its peak rate).

    Rounding down to whole epochs left up to an epoch unused: 99 s of a 20-minute CPU search whose
    epochs took 123 s (2026-11-30).  Keeping a whole epoch where less than a quarter of one fit let the
    deadline cut it, unannealed: a 5-minute search's seed, 16 steps into its fifth epoch (2026-11-30).
    A short last epoch already ``planned`` stays while an eighth of an epoch fits: with one threshold, a
    20-minute search's trial planned 13 and 14 epochs by turns as its epochs took a little more or less
    time (2026-12-01), stretching and squeezing its schedule each time.

    Example:
        >>> _refitted_length(1, step_seconds=1.0, steps_per_epoch=100, eval_seconds=10, seconds_left=300, max_epochs=8)
        _Length(epochs=4, last_epoch_steps=70)
    """
    epoch_seconds = step_seconds * steps_per_epoch + eval_seconds
    whole = int(max(0.0, seconds_left) // epoch_seconds)
    if epoch + whole >= max_epochs:
        return _Length(max_epochs)
    steps = int((seconds_left - whole * epoch_seconds - eval_seconds) / step_seconds)
    if not whole:
        return _Length(epoch + 1, max(steps, steps_per_epoch // 8, 1))
    keeps_short_last = planned is not None and planned.epochs == epoch + whole + 1 and planned.last_epoch_steps
    if steps >= steps_per_epoch / 4 or (keeps_short_last and steps >= steps_per_epoch / 8):
        return _Length(epoch + whole + 1, steps)
    return _Length(epoch + whole)


class _Timing:
    """A run's clock against its deadline and the time it should fill: what to keep back, and its length.

    It times what sizing needs (a forward pass per image, from a batch of val,
    until an evaluation is timed) and re-fits the run's length to end by
    ``fit_until``: inside the first epoch after a few timed steps when the run
    is planned for one epoch, and after each evaluated epoch.
    """

    def __init__(self, run: _Run, cfg: TrainConfig, progress: _Progress, data: DataSplits,
                 fit_until: float | None, max_epochs: int, closing_passes: int | tuple[int, ...] = 1):
        self.run, self.cfg, self.progress = run, cfg, progress
        self.closing_passes = (closing_passes,) if isinstance(closing_passes, int) else tuple(closing_passes)
        self.span = fit_until - time.time() if fit_until is not None else 0.0  # the time the run fills
        self.fit_until, self.max_epochs, self.resumed_from = fit_until, max_epochs, progress.epoch
        # Longer or shorter, from its own first two epochs: the first carries one-off costs (130 s where the next
        # seven took 97-116 s, in a 20-minute CPU run that ended 210 s early); later it grows by an epoch at most.
        self.free_refits = FREE_REFITS if fit_until is not None and not self.resumed_from else 0
        self.val_images, self.eval_images = len(data.val_y), len(data.val_y) + len(data.test_y)
        self.eval_seconds = 0.0  # the last evaluation of val (and its best-epoch files)
        self.pass_seconds = 0.0  # the last evaluation's forward pass over val alone
        self.image_seconds = 0.0  # a forward pass per image (:meth:`time_forward`), until an evaluation is timed

    def forward_seconds(self, images: int) -> float:
        """A forward pass over ``images``, from a batch of val timed the first time it is asked for.

        Guessed as a third of a training step a batch (its share of the arithmetic), it was 1.5x the timed
        pass on a 2-core CPU with bf16 (4.6 s for 3.0 s over 14,000 CIFAR-10 images; 2026-12-01), and on
        other devices the ratio differs again.
        """
        if not self.image_seconds:
            self.time_forward()
        return images * self.image_seconds

    def time_forward(self) -> None:
        """Times a forward pass per image over a batch of val; the fastest of the timings so far counts.

        A fresh process's first passes run slow, warming up: timed as a 2-minute search's trials started, before
        their first step, the pass read 1.5-1.9x what the same trials timed seconds later (2026-12-07). Timed
        once, it read 2.3x the trial's evaluation in one of them: the re-fits inside its one epoch kept ~52 s for
        the end where ~21 s were needed, and ended the epoch after 33 of its 70 steps with 50 s of its time
        unused (51.7% on test; 74.3% with the three epochs that fitted, the next run).  So each of those
        re-fits times it again (:meth:`refit_first_epoch`).
        """
        run, batch = self.run, self.run.val_x[:256]
        for _ in range(1 if self.image_seconds else 2):  # a process's first pass sets its kernels up: not timed
            start = time.perf_counter()
            predict_proba(run.forward, batch, run.augment.normalize, channels_last=run.channels_last, amp=run.amp)
        timed = (time.perf_counter() - start) / max(1, len(batch))
        self.image_seconds = min(timed, self.image_seconds or timed)
        run.model.train()

    def reserve(self) -> float:
        """Seconds to keep before a deadline: evaluate, predict the test split and write it all, with a margin,
        and the passes over val and test of the caller's end (``closing_passes``: the fewest, or the most whose
        passes past the fewest cost at most :data:`CLOSING_SHARE` of the time the run fills).

        Timed by the last evaluation, or before one from a batch of val: the run's own end by the evaluation with
        its files, the caller's passes past it by the evaluation's pass alone.
        """
        scale = self.eval_images / max(1, self.val_images)
        own = self.eval_seconds * scale or self.forward_seconds(self.eval_images)
        one_pass = self.pass_seconds * scale or self.forward_seconds(self.eval_images)
        fewest, *more = self.closing_passes
        affordable = [n for n in more if (n - fewest) * one_pass <= CLOSING_SHARE * self.span]
        return closing_reserve(own, (max(affordable, default=fewest) - 1) * one_pass)

    def refit_first_epoch(self, step_seconds: float, done: int) -> int:
        """The run re-fitted from ``done`` timed steps of its first epoch; returns that epoch's steps.

        A run planned for more epochs keeps its plan, to re-fit after the epoch from the epoch's own time,
        unless this epoch cannot end in time: then it ends in the steps that fit, like a one-epoch run.
        """
        run, steps_per_epoch = self.run, len(self.run.loader)
        if not self.eval_seconds:  # the pass timed as the run started, before its first step, read slow
            self.time_forward()
        eval_guess = self.forward_seconds(self.val_images)  # this epoch's evaluation, not yet timed
        left = self.fit_until - time.time() - self.reserve()  # the reserve holds the last evaluation
        rest = (steps_per_epoch - done) * step_seconds
        if left < rest + eval_guess:  # this epoch is the last: end it in the steps that fit, annealed
            # less a step, for the slowest recent step that the deadline's rule allows for
            length = _Length(1, min(steps_per_epoch, done + max(1, int(left / step_seconds) - 1)))
        elif self.progress.length.epochs > 1:
            return self.progress.length.epoch_steps(1, steps_per_epoch)
        else:
            length = _refitted_length(1, step_seconds, steps_per_epoch, eval_guess, left - eval_guess - rest,
                                      self.max_epochs)
        _refit_schedule(run, self.cfg, length)
        self.progress.length = length
        return length.epoch_steps(1, steps_per_epoch)

    def refit_after(self, epoch: int, step_seconds: float) -> None:
        """The run re-fitted to the time left after evaluating ``epoch``, its steps taking ``step_seconds``."""
        run, progress, steps_per_epoch = self.run, self.progress, len(self.run.loader)
        # the time left, less what a deadline keeps for the closing prediction of the test split: a run
        # fitted to end at its deadline was cut 58 steps into its last epoch of 70 when this took less
        left = self.fit_until - time.time() - self.reserve()
        # and less a margin for later epochs and steps slower than this one: fitted to the time left exactly,
        # a run that grew into it was cut one step before its end in 4 of 5 tries (0.12 s epochs, a 4 s run)
        left -= REFIT_MARGIN_STEPS * step_seconds
        length = _refitted_length(epoch, step_seconds, steps_per_epoch, self.eval_seconds / self.cfg.eval_every,
                                  left, self.max_epochs, progress.length)
        # Later epochs shorten it, when they run slower (a 20-minute search's trial fitted to 10 epochs from
        # its first was cut inside its 10th), and lengthen it by an epoch at most, when they run faster (a
        # trial re-fitted after its fourth to 13 whole epochs, the 14th under a quarter epoch then, ended
        # 36 s before its deadline): more at once would reshape the schedule late, and refusing more left a
        # run shortened by slow epochs there when the machine sped up again (`autocls train` ended 167 s
        # of 1,200 early after 55 epochs of about 19 s, 2026-12-01).
        growth = length.total_steps(steps_per_epoch) - progress.length.total_steps(steps_per_epoch)
        if epoch - self.resumed_from > self.free_refits and growth > steps_per_epoch:
            length = _Length(progress.length.epochs + 1, progress.length.last_epoch_steps)
        _refit_schedule(run, self.cfg, length)
        progress.length = length


def _finish(run: _Run, data: DataSplits, progress: _Progress, artifacts: TrialArtifacts | None, status: str,
            reason: str, resumed_from: int) -> TrainResult:
    """Test probabilities of the best epoch's weights (for the ensemble), then the run's record.

    The record holds the best epoch's temperature fitted on val, which ``autocls predict`` of the run applies:
    trained with label smoothing, a net's softmax says little of how often it is right. Airbench's recipe
    (smoothing 0.2), 2 minutes on the shared CIFAR-10 photos: a mean confidence of 65.4% on test, where it was
    right on 84.1%, ECE 0.187; at its fitted temperature (0.54) 85.5%, ECE 0.018. ResNet-18's recipe, without
    smoothing, was calibrated already: temperature 0.98, ECE 0.012 and 0.010 (`benchmarks/confidence.py`).
    """
    from autocls.ensemble.voting import fit_temperature

    test_acc = test_balanced_acc = None
    temperature = 1.0
    if artifacts and status != "diverged" and progress.best_epoch:
        load_weights(run.model, artifacts.weights_file)
        probs = predict_proba(run.model, data.test_x, run.augment.normalize, channels_last=run.channels_last,
                              amp=run.amp)
        probs, labels = probs.numpy(), data.test_y.numpy()
        artifacts.save_probs("test", probs, progress.best_epoch)
        if len(probs):
            test_acc, test_balanced_acc = top_k_accuracy(probs, labels), balanced_accuracy(probs, labels)
        val = artifacts.load_probs("val")
        if val is not None and len(val[0]):
            temperature = fit_temperature(val[0], data.val_y.numpy())
    result = TrainResult(status, progress.best.get("val_acc", 0.0), progress.best_epoch, len(progress.history),
                         progress.history, test_acc, run.num_params, artifacts.location if artifacts else None, reason,
                         resumed_from, test_balanced_acc)
    if artifacts:
        summary = {k: v for k, v in result.__dict__.items() if k != "history"}
        summary.update(classes=data.classes, mean=list(data.mean), std=list(data.std),
                       image_shape=list(data.source_shape), temperature=temperature)  # what predicting needs
        artifacts.save_result(summary, progress.history)
    return result


def _recorded(summary: dict, history: list[dict], reporter: Callable[[dict], None] | None) -> TrainResult:
    """A finished run's result as :func:`train` returned it, its evaluations reported again (``finished_run``)."""
    for n, metrics in enumerate(history if reporter else [], start=1):
        last = n == len(history) and summary["status"] == "time_budget"  # as its cut epoch was reported
        reporter({**metrics, "finished_run": True, **({"status": "time_budget", "reason": summary["reason"]} if last else {})})
    kept = {f.name: summary[f.name] for f in fields(TrainResult) if f.name in summary and f.name != "history"}
    return TrainResult(**kept, history=history)


def _speed(history: list[dict]) -> dict:
    """Images/s and epoch time of the run, comparable across trials.

    The median over the epochs run on the trial's first thread count: a trial
    given idle cores at the end of a search would otherwise look faster.
    """
    timed = [m for m in history if "images_per_s" in m and m.get("full_epoch", not m.get("partial"))]
    if not timed:
        return {}
    base = [m for m in timed if m.get("threads") == timed[0].get("threads")]
    return {"speed_images_per_s": statistics.median(m["images_per_s"] for m in base),
            "speed_epoch_time": statistics.median(m["epoch_time"] for m in base)}


def run_identity(cfg: TrainConfig, runtime: Runtime, identity: dict | None = None) -> dict:
    """What makes two runs the same run, one continuing the other: ``identity`` (e.g. the dataset), the recipe
    and its seed; not the device or where the data lies, so another machine may resume it."""
    return {**(identity or {}), "config": config_hash({**cfg.to_dict(), "seed": runtime.seed})}


def train(cfg: TrainConfig, data: DataSplits | None = None, reporter: Callable[[dict], None] | None = None,
          out_dir: str | Path | None = None, resume: bool = False, identity: dict | None = None,
          deadline: float | None = None, store: ArtifactStore | None = None,
          runtime: Runtime | None = None, fit_until: float | None = None, max_epochs: int | None = None,
          metric: str = "accuracy", on_step: Callable[[int, int, int], None] | None = None,
          closing_passes: int | tuple[int, ...] = 1) -> TrainResult:
    """Train ``cfg`` and return its result; ``reporter(metrics)`` is called after every evaluation, and
    ``on_step(epoch, steps taken, steps planned)`` after every training step (for a display: an epoch of
    large photos on a CPU takes minutes).

    With ``out_dir`` the best epoch's weights and val class probabilities are
    written as soon as that epoch ends, so a run stopped early (by ASHA, or
    killed) still leaves its best state; test probabilities of those weights
    are written when the run ends.  Evaluated epochs also leave ``last.pt``
    (every epoch, or fewer when writing it would take more than
    ``runtime.checkpoint_share`` of training time); with ``resume`` a run whose
    folder holds a checkpoint of the same ``identity`` and config continues
    from there, and one that finished (complete, or stopped by its time
    budget) returns its result without training, its evaluations reported
    again with ``finished_run``.  With ``store`` (an :class:`~autocls.artifacts.ArtifactStore`),
    ``out_dir`` is a folder in that store.  With ``deadline`` (a ``time.time()``), the run stops in time
    to evaluate and write its best state before it, with status ``time_budget``.
    With ``fit_until`` (a ``time.time()``), the first epoch's measured time
    (training and evaluation) re-fits the run's length to end by then, at most
    ``max_epochs`` (default ``cfg.epochs``), its last epoch shortened to the
    steps that fit, and the schedule follows: a budget's trial sized from a few
    timed steps fills the time it was given and still anneals; the second epoch's time re-fits it again, and
    later epochs shorten it, or lengthen it by an epoch at most.  The metrics carry the length as ``epochs``.
    The best epoch, the one kept, is the latest within one standard error
    (:func:`~autocls.metrics.within_standard_error`) of the highest val ``metric`` (of
    :data:`~autocls.metrics.RANKING_METRICS`: ``"balanced_accuracy"`` for a search ranking by it); the
    metrics carry both, each epoch's (``val_acc``, ``val_balanced_acc``) and the best epoch's (``best_val_...``).
    ``closing_passes``: the forward passes over val and test that a deadline keeps time for at the end, the
    run's own and those of what its caller runs after it (``autocls train``'s flip TTA: 2); several, fewest first:
    the first, or the most whose passes past it take at most :data:`CLOSING_SHARE` of the time to ``fit_until``
    (``autocls train``: 2, or 6 for flip-translate's four more views).

    Example:
        >>> from autocls.training import TrainConfig, train
        >>> result = train(TrainConfig(model="lenet", epochs=2), runtime=Runtime(dataset="digits"))
        >>> result.status
        'complete'
    """
    # --- set-up ----------------------------------------------------------------------------
    runtime = runtime or Runtime()
    ranked_by = ranking_metric_named(metric).objective
    device = resolve_device(runtime.device)
    torch.manual_seed(runtime.seed)
    np.random.seed(runtime.seed)
    data = data or prepare_data(runtime.dataset, runtime.data_dir, cfg.val_fraction, seed=0, image_size=cfg.image_size)
    artifacts = None
    if out_dir:
        artifacts = TrialArtifacts(out_dir, run_identity(cfg, runtime, identity), store=store)
        resume = artifacts.claim() and resume
        artifacts.save_config(cfg.to_dict())
        record = artifacts.load_result() if resume else None
        if record and record.get("status") in ("complete", "time_budget"):  # a diverged run may be resumed, and fail
            return _recorded(record, artifacts.load_history() or [], reporter)
    run = _set_up(cfg, data, device, runtime.compile)
    progress = _Progress()
    state = artifacts.load_checkpoint(device) if resume else None
    if state is not None:
        progress = _restore(state, run, cfg, artifacts, device)
        # Report the restored epochs again: a report cut off by the interruption is
        # not lost, and a reporter that already has an epoch (the searcher) skips it.
        for metrics in progress.history if reporter else []:
            reporter({**metrics, "resumed_from_epoch": progress.epoch})
    resumed_from = progress.epoch
    progress.length = progress.length if progress.length.epochs else _Length(cfg.epochs)
    threads = torch.get_num_threads()
    status, reason = "complete", ""

    if progress.epoch >= progress.length.epochs:  # stopped between the last checkpoint and its report
        return _finish(run, data, progress, artifacts, status, reason, resumed_from)
    # With a deadline, training stops early enough to evaluate, predict the test split and write it all.
    timing = _Timing(run, cfg, progress, data, fit_until, max_epochs or cfg.epochs, closing_passes)
    epoch, mean_step = progress.epoch, 0.0
    while epoch < progress.length.epochs:
        epoch += 1
        # --- one epoch of training -----------------------------------------------------------
        start = time.perf_counter()
        planned = progress.length.epoch_steps(epoch, len(run.loader))
        if run.average is not None:  # where the run is: resumed, or re-fitted to a time since the last epoch
            run.average.step = (epoch - 1) * len(run.loader)
            run.average.total_steps = progress.length.total_steps(len(run.loader))
        refit = None
        if fit_until is not None and epoch == 1 and planned >= 8 and (progress.length.epochs == 1 or deadline):
            # A run of one epoch would re-fit only once it is over: time a quarter of it and re-fit then
            # (a 2-minute search's only trial, planned for one epoch, ended 29 s before its deadline), and
            # after its third step, when a deadline would cut it before a quarter.  A longer run whose first
            # epoch cannot end before its deadline ends inside it, annealed, where the deadline cut it at its peak:
            # `autocls train ./train --model resnet18 --time-budget 2m` on 2 cores, 15 steps, 10% (2026-12-02).
            refit = (tuple(sorted({min(3, planned // 4), planned // 4})), timing.refit_first_epoch)
        train_loss, steps = _train_epoch(run, cfg, data.num_classes, deadline, timing.reserve, planned, refit,
                                         step_seconds=mean_step,
                                         on_step=None if on_step is None else
                                         (lambda taken, of, epoch=epoch: on_step(epoch, taken, of)))
        epoch_time = time.perf_counter() - start
        mean_step = epoch_time / max(1, steps)  # the next epoch's step time until it times its own
        partial = steps < progress.length.epoch_steps(epoch, len(run.loader))  # as re-fitted inside the epoch
        progress.epoch, progress.since_checkpoint = epoch, progress.since_checkpoint + epoch_time
        if not math.isfinite(train_loss):
            status, reason = "diverged", f"training loss became {train_loss} in epoch {epoch}"
            progress.history.append({"epoch": epoch, "train_loss": train_loss, "diverged": True})
            if reporter:
                reporter({**progress.history[-1], "val_acc": 0.0, "val_balanced_acc": 0.0, "val_loss": float("inf"),
                          "status": status,
                          "reason": reason})
            break
        if partial:
            status, reason = "time_budget", f"time budget: stopped in epoch {epoch} after {steps} of {planned} steps"
        last = epoch >= progress.length.epochs or partial
        if epoch % cfg.eval_every and not last:
            continue

        # --- evaluate, keep the best, checkpoint ------------------------------------------------
        eval_start = time.perf_counter()
        val_probs, val_acc, val_balanced_acc, val_loss = _evaluate(run, data)
        timing.pass_seconds = time.perf_counter() - eval_start
        score = {"val_acc": val_acc, "val_balanced_acc": val_balanced_acc}[ranked_by]
        if not run.per_batch_schedule:
            run.scheduler.step(score)
        # Kept: the latest epoch within one standard error of the highest val score so far, trained longer and
        # further annealed than the highest, which a small val split picks by chance (top-1 on 50 photos moves
        # in steps of two points): in 15 runs of benchmarks/best_epoch.py at 50 to 200 val photos the latest of
        # the highest lost 0.43 test points on average to this rule (and won by 0.22 at most).  At 5,000: 0.5.
        peak = max([score] + [h[ranked_by] for h in progress.history if ranked_by in h])
        if within_standard_error(score, peak, len(data.val_y)) or progress.best_acc < 0:
            progress.best_acc, progress.best_epoch = score, epoch
            if artifacts:
                artifacts.save_best(run.model, val_probs, epoch)
        metrics = {
            "epoch": epoch, "val_acc": val_acc, "val_balanced_acc": val_balanced_acc, "val_loss": val_loss,
            "train_loss": train_loss, "epoch_time": epoch_time, "steps": steps,
            "images_per_s": steps * run.loader.batch_size / epoch_time, "lr": run.optimizer.param_groups[0]["lr"],
            "num_params": run.num_params, "threads": threads, "partial": partial, "resumed_from_epoch": resumed_from,
            "full_epoch": steps == len(run.loader),  # not cut by a deadline nor a shortened last epoch: a timing
            "eval_time": time.perf_counter() - eval_start,  # evaluation + best-epoch files
        }
        timing.eval_seconds = metrics["eval_time"]
        if fit_until is not None and not last:
            timing.refit_after(epoch, mean_step)
        metrics["epochs"] = progress.length.epochs
        progress.history.append(metrics)
        best = progress.best
        # (a run resumed from a checkpoint older than balanced accuracy has none for its earlier epochs)
        metrics.update(best_val_acc=best["val_acc"], best_val_balanced_acc=best.get("val_balanced_acc", 0.0),
                       best_val_loss=best["val_loss"], **_speed(progress.history))
        if artifacts and not partial and _checkpoint_due(runtime.checkpoint_share, progress):
            _save_checkpoint(artifacts, run, progress, device)
        # Before the last report: a scheduler (ASHA at max_t) may end the
        # process as soon as it has seen the final epoch.
        result = _finish(run, data, progress, artifacts, status, reason, resumed_from) if last else None
        if reporter:
            reporter({**metrics, "status": "time_budget", "reason": reason} if partial else metrics)
        if last:
            return result
        threads = torch.get_num_threads()  # the reporter may have handed this run more cores
    return _finish(run, data, progress, artifacts, status, reason, resumed_from)
