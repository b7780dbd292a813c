"""Fitting trials to a time budget on the hardware at hand.

A search with ``--time-budget`` first measures the seconds an epoch takes
here for each model (and width) the space can choose: a few training steps on
the threads a trial gets.  With those:

* models whose first ASHA rung cannot finish within a fair share of the
  budget are left out, with the reason printed;
* every trial gets the epochs that fit its share (never more than the space
  asks for), so it anneals its schedule instead of being cut in the middle;
* ASHA's first rung is no earlier than an eighth of the shortest such trial
  (:data:`FIRST_RUNG_PART`);
* a seed recipe runs narrower where its own width would train too few epochs,
  and wider where one trial of it fills the budget (:meth:`BudgetPlan.fitted_seed`);
* near the end, a trial gets only the epochs that still fit before the
  deadline, and none starts that could not finish one epoch;
* once trials run, their real epoch times replace the estimates, the
  configs not run yet are scaled to the speed the trials found
  (:meth:`BudgetPlan.observe`), and each trial re-fits its own length to
  the time it was given from its first epoch (:meth:`BudgetPlan.fit_until`;
  the trainer's ``fit_until``).

The measurements are cached in the study (user attr ``seconds_per_epoch``),
so a resumed search sizes its trials the same way; a model choice new to the
study (a session with another space) is timed when it first comes.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import torch

from autocls.search.space import SearchSpace, parse_space
from autocls.training.config import TrainConfig
from autocls.training.trainer import closing_reserve

# Each slot should finish at least this many full-length trials in the budget, else its trials may take the whole
# budget (fewer, longer ones, the seed's at a wider width: see WIDE_SEED_EPOCHS).  Fewer leaves nothing to compare
# or ensemble; more makes every trial too short.  At 2, a 20-minute CPU search on CIFAR-10 (2 cores, ~220 GFLOP/s,
# an epoch at width 0.5 ~22 s) ran two 24-epoch trials at 0.5 side by side, ensembled to 90.34% in four runs; at 3
# the seed ran at 0.75 for 24 epochs on both cores and again for 12-15: 90.88% and 90.92%, against the seed at 0.75
# alone for the whole budget (38 epochs) 90.28%; with other initialisations 90.78% against 90.80% (a tie),
# 90.98% against 90.48%, 90.72% against 90.72% (a tie) and 90.36% against 90.42%: +0.21 on average, within one
# recipe's spread between initialisations (benchmarks/RESULTS.md, 2026-12-05).
TRIALS_PER_SLOT = 3
EPOCH_MARGIN = 1.15  # an epoch over the few timed steps: a trial cut before its schedule ends loses its best epochs
# On a CPU an image costs about the same in a batch of 128 as of 512, and the calibration is
# time the search does not train: timing cpu-small's six configs at 128 took 17 s on 2 cores
# (2026-11-28), at its largest batch (512) 88 s, with estimates within 20% of each other
# (benchmarks/calibration.py).  Two timed steps are noisy (188 s estimated for an epoch that
# took 140 s, in one run); a trial re-fits its length from its own first epoch, so the plan
# needs only rough figures.  A GPU times the space's largest batch: small batches there are
# launch-bound, several times slower per image.
CPU_TIMING_BATCH = 128
# A seed's one-cycle schedule over a single epoch is barely a schedule: in a 5-minute CPU search the airbench
# seed at width 0.5 trained 1 epoch (59.8% on CIFAR-10's test part), where width 0.375 fitted 2. Two are not
# enough either: in 240 s on 2 cores, width 0.5 for 2 epochs reached 58.4%, width 0.375 for 4 74.3%
# (benchmarks/seed_recipes.py --widths, side by side, 2026-11-30).
MIN_SEED_EPOCHS = 3
# Where one trial of a seed fills the budget (TRIALS_PER_SLOT of its full-length trials do not fit), a wider net
# for fewer epochs beats the seed's own width: at 0.5 the airbench seed stops gaining by ~25 epochs, at 0.75 it
# gains on.  With flip TTA on 2 cores: 10 minutes, 0.75 for 15 epochs 89.82% vs 0.5 for 26 89.54%; 20 minutes,
# 0.75 for 31 90.30% vs 0.5 89.50% (2026-12-01), and 0.75 for 16 90.22% vs 0.5 for 24 89.00% (2026-12-02).  So such a
# seed runs at the widest width that still trains this many epochs in the budget, by the plan.  The plan's
# epochs err short: the calibration's snapshot of a machine whose speed drifts from minute to minute put
# epochs at 1.0-2.2x their real time in every run recorded (benchmarks/RESULTS.md), so ten planned are ten
# or more (16 real epochs at 0.75 were planned as 10-12 on 2026-12-02).  Fewer loses: 0.75 for 8 epochs
# 88.88%, 0.5 for 15 in the same time 89.60% (flip-translate TTA, 2026-12-02), and side by side with real
# epochs the calibration's estimate at 0.75 has no bias to count on (0.85-1.27x, benchmarks/calibration.py).
WIDE_SEED_EPOCHS = 10
# ASHA stops a trial whose value at a rung is below the best 1/reduction_factor of those recorded there
# before it: with the few full-length trials a budget fits, that is the one or two before it, and at epoch 1
# of a 24-epoch one-cycle run it compares warm-up noise (a 20-minute CPU search stopped airbench94's second
# seed at 33.8% against the first seed's 35.2%, 2026-12-01).  So a budgeted search puts its first rung no
# earlier than this part of its shortest full-length trial.
FIRST_RUNG_PART = 1 / 8
# On a small training split a trial has enough epochs at this many passes over it: a second member gains more than
# more passes.  On 500 of the shared CIFAR-10 photos (30 passes an epoch), the cpu-small seed's members scored 45.9%,
# 46.3% and 47.7% on 5,000 held-out photos at 60, 120 and 360 passes (flip TTA, three initialisations each), where
# two of 60 passes averaged 48.0% (one of 120: 46.3%), and three of 120 49.6% (one of 360, as long: 47.7%)
# (benchmarks/small_folder.py, 2026-12-07).  So a budget that fits TRIALS_PER_SLOT trials of this many passes gives
# them a share each, not its whole to one of the space's length (see plan).  On all 40,000 photos, one pass an
# epoch, the space's epochs come first.
ENOUGH_PASSES = 60
# The views the closing ensemble's test-time augmentation adds to a member's saved plain pass, at its most (flip:
# the mirror; flip-translate: two shifts and their mirrors; autocls.inference.TTA_MODES).
TTA_ADDED_VIEWS = 5
# A trial's seconds besides its epochs' (a Ray actor, the split read from the store, the model built), until a
# trial's start is seen (:meth:`BudgetPlan.observe_start`): about 6 s for a one-epoch trial in a 20-minute CPU search
# on 5,000 CIFAR-10 images (2026-11-28).  A later trial in the same worker reads no data and imports nothing: ~0.4 s
# on 180 photos, where the 8 s (and the end's 16 s) stopped a 1-minute search's trials 20-27 s before the end
# (benchmarks/short_budget.py, 2026-12-07).
TRIAL_START_S = 8.0


def config_key(values: dict) -> str:
    """What an epoch's time depends on, as the key of the measurements: ``model@width``."""
    return f"{values.get('model')}@{float(values.get('width', 1.0)):g}"


def _model(key: str) -> str:
    return key.split("@")[0]


def _width(key: str) -> float:
    return float(key.split("@")[1])


@dataclass
class BudgetPlan:
    """Seconds and epochs per ``model@width``, and the seconds a trial of it is given; models left out and why.

    Example:
        >>> p = BudgetPlan({"resnet9@0.5": 60.0}, {"resnet9@0.5": 8}, {}, grace_period=1)
        >>> p.epochs_for({"model": "resnet9", "width": 0.5}, seconds_left=150)
        2
    """

    seconds: dict[str, float]
    epochs: dict[str, int]
    skipped: dict[str, str]
    grace_period: int = 1
    allotted: dict[str, float] = field(default_factory=dict)  # seconds a trial of each key may fill
    eval_share: float = 0.0  # the part of an epoch's seconds that evaluates val and test (:func:`eval_share`)
    space_grace_period: int = 0  # the space's own first rung, when the plan moved it later (0: not moved)
    share: float = float("inf")  # a trial's share of its slot's budget; a key allotted more fills the slot alone
    observed: dict[str, float] = field(default_factory=dict)  # the latest real epoch of each key that ran
    # the passes over val and test that the closing ensemble's test-time augmentation adds, which a trial ending at
    # the deadline keeps time for (:meth:`closing_passes`): TTA_ADDED_VIEWS for each member it may have
    closing_views: int = 0
    start_seconds: float = TRIAL_START_S  # a trial's start (:meth:`observe_start`)
    calibrated: dict[str, float] = field(init=False)  # the estimates as measured, before any trial ran

    def __post_init__(self) -> None:
        self.calibrated = dict(self.seconds)

    @property
    def models(self) -> list[str]:
        return sorted({_model(key) for key in self.epochs})

    @property
    def widths(self) -> list[float]:
        return sorted({_width(key) for key in self.epochs})

    def epochs_for(self, values: dict, seconds_left: float) -> int | None:
        """The epochs this config gets with ``seconds_left`` before the deadline.

        0 when its first rung would not end in time, or when it was measured and
        left out (it should not start); None when the config was not measured.
        """
        key = config_key(values)
        if key not in self.epochs:
            return 0 if key in self.seconds else None
        left = seconds_left - self.overhead(key)
        fits = min(self.epochs[key], left // self.seconds[key]) if left > 0 else 0  # seconds_left may be infinite
        return 0 if fits < min(self.grace_period, self.epochs[key]) else int(fits)

    def overhead(self, key: str) -> float:
        """A trial's seconds besides its epochs: its start, and the end its trainer keeps before a deadline.

        The trainer stops in time to predict the test split and write it, with a
        margin (:func:`autocls.training.trainer.closing_reserve`), and, ending at the deadline, in time for the
        closing ensemble's views (:attr:`closing_views`): counted for every trial, as any may end there.
        Not counted, a one-epoch trial started with just an epoch's time left was cut
        inside that epoch (twice in the last 170 s of a 20-minute CPU search).
        """
        one_pass = self.eval_share * self.seconds[key]
        return self.start_seconds + closing_reserve(one_pass, self.closing_views * one_pass)

    def fitting(self, seconds_left: float) -> list[dict]:
        """The kept ``model``/``width`` pairs whose first rung still ends within ``seconds_left``.

        Example:
            >>> p = BudgetPlan({"resnet9@0.25": 9.0, "resnet9@0.5": 30.0}, {"resnet9@0.25": 4, "resnet9@0.5": 2}, {})
            >>> p.fitting(seconds_left=20)
            [{'model': 'resnet9', 'width': 0.25}]
        """
        pairs = [{"model": _model(key), "width": _width(key)} for key in sorted(self.epochs)]
        return [values for values in pairs if self.epochs_for(values, seconds_left) != 0]

    def fitted_seed(self, seed: dict, fixed: dict) -> dict | None:
        """A seed recipe as it may run: unchanged, or at a width the plan kept for its model, or None.

        A seed whose width was left out, or would train fewer than
        :data:`MIN_SEED_EPOCHS` epochs, runs at the widest kept width below its own
        that trains that many (else the one that trains the most; the narrowest
        kept when none is below): its tuned recipe at a smaller scale beats a random
        draw of the space in the same time.  A seed that fills its slot's budget
        alone runs at the widest kept width that still trains
        :data:`WIDE_SEED_EPOCHS` epochs in it, when that is wider than its own.
        None when its model was left out.

        Example:
            >>> p = BudgetPlan({"resnet9@0.25": 9.0, "resnet9@0.5": 30.0}, {"resnet9@0.25": 1}, {})
            >>> p.fitted_seed({"model": "resnet9", "width": 0.5, "lr": 0.4}, fixed={})
            {'model': 'resnet9', 'width': 0.25, 'lr': 0.4}
        """
        merged = {**fixed, **seed}
        fits = self.epochs_for(merged, float("inf"))
        if fits is None or ("width" not in seed and fits != 0):  # not measured, or no width to change
            return seed
        widths = sorted(_width(key) for key in self.epochs if _model(key) == merged.get("model"))
        if not widths or "width" not in seed:
            return None
        narrower = [w for w in widths if w <= float(seed["width"])] or widths[:1]
        epochs = {w: self._epochs_at_start({**merged, "width": w}) for w in narrower}
        enough = [w for w in narrower if epochs[w] >= MIN_SEED_EPOCHS]
        width = enough[-1] if enough else max(reversed(narrower), key=epochs.get)  # ties: the wider
        if width == float(seed["width"]) and self._fills_slot({**merged, "width": width}):
            wider = [w for w in widths if w > width and self._fills_slot({**merged, "width": w})
                     and self._epochs_at_start({**merged, "width": w}) >= WIDE_SEED_EPOCHS]
            width = max(wider, default=width)
        return seed if width == float(seed["width"]) else {**seed, "width": width}

    def _fills_slot(self, values: dict) -> bool:
        """Whether a trial of ``values`` is allotted more than a trial's share: one fills its slot's budget."""
        return self.allotted.get(config_key(values), 0.0) > self.share

    def _epochs_at_start(self, values: dict) -> int:
        """The epochs a trial of ``values`` gets when it starts with its allotted time: less its start and end.

        The plan's epochs do not count those; a 5-minute search kept its seed at a width planned for two
        epochs that started with time for one (59.8% on CIFAR-10's test part, 2026-11-30).
        """
        key = config_key(values)
        return self.epochs_for(values, self.allotted[key]) if key in self.allotted else self.epochs[key]

    def fit_until(self, values: dict, deadline: float | None) -> float | None:
        """When a trial of ``values`` starting now should end: its allotted time, not past ``deadline``.

        The calibration can misjudge epochs up to 2x on a CPU whose speed shifts, so the trial
        re-fits its epochs to this time from its own first epoch.  None when
        the config was not measured.
        """
        key = config_key(values)
        if key not in self.allotted:
            return None
        end = time.time() + self.allotted[key]
        return min(end, deadline) if deadline is not None else end

    def observe(self, values: dict, seconds: float) -> None:
        """A trial's real epoch (training and evaluation) replaces the estimate of its ``model@width``.

        The configs not run yet keep their calibrated cost relative to those
        that ran, at the machine's speed as the trials found it: their estimates
        are scaled by the median of real / calibrated over the configs observed.
        A few calibration steps time the machine at one moment, and this one's
        speed shifts by 2-2.8x between phases of 10-40 s
        (``benchmarks/calibration.py --trace``); a trial's epochs span them.

        Example:
            >>> p = BudgetPlan({"resnet9@0.25": 20.0, "resnet9@0.5": 60.0}, {"resnet9@0.25": 4, "resnet9@0.5": 2}, {})
            >>> p.observe({"model": "resnet9", "width": 0.25}, 10.0)
            >>> p.seconds
            {'resnet9@0.25': 10.0, 'resnet9@0.5': 30.0}
        """
        key = config_key(values)
        if key not in self.seconds or seconds <= 0:
            return
        self.observed[key] = seconds
        speed = statistics.median(real / self.calibrated[k] for k, real in self.observed.items())
        self.seconds = {k: self.observed.get(k, calibrated * speed) for k, calibrated in self.calibrated.items()}

    def observe_start(self, seconds: float) -> None:
        """A trial's seconds from its proposal to its first step become the start of those after it.

        The latest, not the most seen: the first trial of a search starts a worker, which imports torch and reads
        the split, and Ray gives the later ones that worker (``reuse_actors``).

        Example:
            >>> p = BudgetPlan({"net@1": 10.0}, {"net@1": 3}, {})
            >>> p.epochs_for({"model": "net", "width": 1}, seconds_left=28)  # 8 s to start, 1 s to end
            1
            >>> p.observe_start(0.5)
            >>> p.epochs_for({"model": "net", "width": 1}, seconds_left=28)
            2
        """
        self.start_seconds = max(0.0, seconds)

    def shortest_rung(self) -> float:
        """The fewest seconds in which any kept config reaches its first rung, start and end included."""
        return min(self.seconds[key] * min(self.grace_period, self.epochs[key]) + self.overhead(key)
                   for key in self.epochs)

    def closing_members(self, values: dict, budget_s: float, slots: int, top: int) -> int:
        """The members the closing ensemble may have, where they are trials of ``values`` (the seed recipe, as
        fitted): as many as finish in ``budget_s`` on ``slots`` slots, or reach their first rung, at most ``top``.

        Example:
            >>> p = BudgetPlan({"net@0.5": 37.0}, {"net@0.5": 10}, {}, eval_share=0.069)
            >>> p.closing_members({"model": "net", "width": 0.5}, budget_s=1150, slots=1, top=5)
            3
        """
        key = config_key(values)
        if key not in self.epochs:
            return 0
        trial_s = self.epochs[key] * self.seconds[key] + self.overhead(key)
        finished, left = divmod(budget_s, trial_s)
        cut_short = left >= self.grace_period * self.seconds[key] + self.overhead(key)  # reaches its first rung
        return min(top, slots * int(finished + cut_short))

    def closing_passes(self, values: dict, fit_until: float | None, deadline: float | None) -> int:
        """The passes over val and test a trial of ``values`` keeps time for at its end: its own test prediction,
        and the closing ensemble's :attr:`closing_views` where it may end at the ``deadline`` (the trials'), as a
        trial not sized to end before it (``fit_until`` None), or sized to end too near it for those views.

        Its trainer times them by its own passes (:meth:`autocls.training.trainer._Timing.reserve`): priced by the
        closing from the calibration's epochs, the views kept 33 s of a 5-minute search's end, where the one trial's
        epochs ran in ~0.7x the calibrated time (2026-12-07).

        Example:
            >>> p = BudgetPlan({"net@0.5": 40.0}, {"net@0.5": 10}, {}, eval_share=0.1, closing_views=10)
            >>> net = {"model": "net", "width": 0.5}
            >>> p.closing_passes(net, fit_until=1000.0, deadline=1000.0), p.closing_passes(net, 500.0, 1000.0)
            (11, 1)
        """
        if not self.closing_views or deadline is None:
            return 1
        if fit_until is not None and config_key(values) in self.seconds:
            views_s = self.closing_views * self.eval_share * self.seconds[config_key(values)]
            if fit_until + views_s < deadline:  # ends early enough for the closing's views after it
                return 1
        return 1 + self.closing_views

    def lines(self) -> list[str]:
        """The plan as the search prints it at the start.

        The epochs are the calibration's estimate; a 5-minute search's trial planned at 12 epochs of ~22 s ran 15
        of 18 s (2026-12-06): the line says that each trial re-fits them.

        Example:
            >>> print(*BudgetPlan({"net@1": 22.0}, {"net@1": 12}, {}).lines())
            budget: trials sized to fit: net@1 12 epochs (~22 s each); each trial re-fits them to its measured speed
        """
        fitted = ", ".join(f"{key} {e} epoch{'s' * (e > 1)} (~{self.seconds[key]:.0f} s each)"
                           for key, e in sorted(self.epochs.items()))
        fitted += "; each trial re-fits them to its measured speed"
        moved = [f"budget: ASHA's first rung moved from epoch {self.space_grace_period} to {self.grace_period}, an "
                 f"eighth of the shortest trial (earlier, too few trials are compared there to tell their warm-up "
                 f"apart)"] if self.space_grace_period else []
        return [f"budget: trials sized to fit: {fitted}"] + [f"budget: skipped {m}: {why}" for m, why in
                                                             sorted(self.skipped.items())] + moved


def configs(space: SearchSpace) -> list[dict]:
    """Every model the space can choose, at each width it can take (its extremes for a range)."""
    from autocls.models.registry import accepts_width

    param = space.params.get("model")
    models = list(param.choices) if param is not None else [space.fixed.get("model", TrainConfig.model)]
    width = space.params.get("width")
    if width is None:
        widths = [float(space.fixed.get("width", 1.0))]
    else:
        widths = [float(w) for w in width.choices] if width.type == "categorical" else [width.low, width.high]
    return [{"model": m, "width": w} for m in models for w in (widths if accepts_width(m) else [1.0])]


def seconds_per_epoch(space: SearchSpace, data, threads: int, steps: int = 2,
                      device: str = "cpu", batch: int | None = None, skip: Collection[str] = ()) -> dict[str, float]:
    """Measured seconds of one epoch (training plus evaluation of val and test) per ``model@width``, but those
    in ``skip``.

    Each trains ``steps`` steps (after one warm-up step) on a batch of the real
    images, channels-last as the trainer runs, on ``device`` (bf16 autocast
    where it is fast, as the trainer runs there): ``batch`` images a step, by
    default the space's largest batch size on a GPU and at most
    :data:`CPU_TIMING_BATCH` on a CPU.  A search whose trials run on other
    machines (``--address``) times them here: a guess.
    """
    from autocls.data.augment import BatchAugment, shrunk
    from autocls.inference import fast_bf16
    from autocls.models.registry import model_from_config

    if batch is None:
        batch = space.largest("batch_size", 128)
        if device == "cpu":
            batch = min(batch, CPU_TIMING_BATCH)
    n_train, n_eval = len(data.train_y), len(data.val_y) + len(data.test_y)
    batch = min(batch, n_train - n_train % 2)
    trained = trained_per_epoch(space, n_train)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y, shrunk_to = data.train_y[:batch].to(device), {}
        measured = {}
        bf16 = fast_bf16(torch.device(device))
        for config in configs(space):
            if config_key(config) in skip:
                continue
            # the trial's own size: the space's, else its model's fitted to the images (SearchSpace.trial_config)
            size = space.trial_config({**space.fixed, **config}, train_images=n_train,
                                      image_side=min(data.train_x.shape[-2:])).image_size
            if size not in shrunk_to:  # the trainer shrinks its images to this once, then trains at it
                shrunk_to[size] = shrunk(data.train_x[:batch], size).to(device)
            raw, augment = shrunk_to[size], BatchAugment(data.mean, data.std, 4, True, image_size=size)
            model = model_from_config(config, data.num_classes, in_chans=data.image_shape[0])
            model = model.to(device, memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            for step in range(steps + 1):
                if step == 1:
                    _synchronize(device)
                    start = time.perf_counter()
                x = augment(raw).contiguous(memory_format=torch.channels_last)  # each step, as the loader does
                with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            _synchronize(device)
            per_step = (time.perf_counter() - start) / steps
            # whole epochs ran about 15% slower than these few steps (ResNet-9 on 2 CPU cores), hence the margin
            epoch = per_step * (trained // batch) / (1 - eval_share(trained, n_eval))
            measured[config_key(config)] = EPOCH_MARGIN * epoch
        return measured
    finally:
        torch.set_num_threads(previous)


# The widths `autocls train --time-budget` chooses among when no --width is given (the search's spaces range over
# the same: cpu-small's airbench 0.25-1.0).
TRAIN_WIDTHS = (1.0, 0.75, 0.5, 0.375, 0.25)


def train_width(cfg, data, until: float, threads: int, device: str = "cpu",
                widths: tuple[float, ...] = TRAIN_WIDTHS) -> tuple[float, dict[float, float]]:
    """The width at which a run of ``cfg`` fills the time ``until`` with enough epochs; and the epochs (with parts of
    one) that fit at each width timed.

    The widest of ``widths`` (none wider than ``cfg.width``) that trains
    :data:`WIDE_SEED_EPOCHS` epochs by ``until`` (a ``time.time()``; ``cfg.epochs`` where
    fewer), as a search's seed that fills its budget alone is sized
    (:meth:`BudgetPlan.fitted_seed`); where none does, the one that trains the most (epochs, else steps).
    Widths are timed widest first (:func:`seconds_per_epoch`), and the timing
    stops at the first that fits (the time it takes counts).  The run's own first epoch re-fits its length
    afterwards: this sizes only what the epochs cannot change, the net.

    Example:
        >>> from autocls.data import prepare_data
        >>> from autocls.training import TrainConfig
        >>> train_width(TrainConfig(model="lenet", epochs=2), prepare_data("digits"), time.time() + 600, threads=1)[0]
        1.0
    """
    target = min(WIDE_SEED_EPOCHS, cfg.epochs)
    fixed = {"model": cfg.model, "batch_size": cfg.batch_size, "epochs": cfg.epochs,
             "epoch_images": cfg.epoch_images, "image_size": cfg.image_size}
    fixed = {k: v for k, v in fixed.items() if v is not None}
    n_train, n_eval = len(data.train_y), len(data.val_y) + len(data.test_y)
    fits: dict[float, float] = {}
    for width in sorted((w for w in widths if w <= cfg.width), reverse=True) or [cfg.width]:
        space = parse_space({"fixed": fixed, "params": {"width": {"type": "categorical", "choices": [width]}}})
        seconds = seconds_per_epoch(space, data, threads, device=device)[config_key({**fixed, "width": width})]
        left = until - time.time() - closing_reserve(eval_share(trained_per_epoch(space, n_train), n_eval) * seconds)
        fits[width] = max(0.0, left / seconds)
        if fits[width] >= target:
            return width, fits
    most = max(int(epochs) for epochs in fits.values())
    if most:  # of those training as many whole epochs, the widest
        return max(w for w, epochs in fits.items() if int(epochs) == most), fits
    return max(fits, key=lambda w: (fits[w], -w)), fits  # not an epoch at any: the most steps (none: the narrowest)


def trained_per_epoch(space: SearchSpace, n_train: int) -> int:
    """Images a trial of ``space`` trains on per epoch: whole passes over ``n_train`` (TrainConfig.epoch_images; where
    the space sets none, what a trial fits to ``n_train``: see SearchSpace.trial_config).

    Example:
        >>> space = SearchSpace.from_yaml("{fixed: {epoch_images: 45000}, params: {lr: {type: float, low: 0.1, high: 1}}}")
        >>> trained_per_epoch(space, 5_000)
        45000
        >>> trained_per_epoch(SearchSpace.from_yaml("params: {lr: {type: float, low: 0.1, high: 1}}"), 216)  # 5 passes
        1080
    """
    from autocls.data.loader import passes_per_epoch
    from autocls.training.config import passes_for_data

    epoch_images = space.largest("epoch_images")
    if epoch_images is None:
        epoch_images = passes_for_data(TrainConfig(), n_train).epoch_images
    return n_train * passes_per_epoch(n_train, int(epoch_images))


def enough_epochs(space: SearchSpace, n_train: int | None) -> int:
    """The epochs at which a trial of ``space`` on ``n_train`` training images has enough to be one of several:
    :data:`ENOUGH_PASSES` over them, or the space's longest where that comes first (None: the space's longest).

    Example:
        >>> space = SearchSpace.load("cpu-small")  # 24 epochs of about 45,000 images
        >>> enough_epochs(space, 500), enough_epochs(space, 5_000), enough_epochs(space, 40_000)
        (2, 6, 24)
    """
    if not n_train:
        return space.max_epochs
    passes = trained_per_epoch(space, n_train) // n_train
    return max(1, min(space.max_epochs, ENOUGH_PASSES // passes))


def eval_share(n_train: int, n_eval: int) -> float:
    """The part of an epoch spent evaluating ``n_eval`` images after training on ``n_train`` (all its passes).

    A forward pass costs about a third of a training step.

    Example:
        >>> round(eval_share(40_000, 10_000), 3)
        0.077
    """
    return n_eval / 3 / (n_train + n_eval / 3)


def plan(space: SearchSpace, measured: dict[str, float], budget_s: float, slots: int,
         train_images: int | None = None, eval_images: int = 0, closing_views: int = 0) -> BudgetPlan:
    """Epochs per ``model@width`` so that each slot fits :data:`TRIALS_PER_SLOT` full-length trials.

    Where it cannot, a trial gets up to the slot's whole budget instead of a
    share: fewer, longer trials (the first is the space's seed recipe); on a small split of ``train_images``
    images, only where the share would not train :func:`enough_epochs`.

    A model is left out when even its fastest width cannot finish its first
    rung in a trial's share.  When nothing fits, the fastest config alone is
    kept, for one rung: a small model rather than none.  A trial evaluates ``eval_images`` (val and test) after
    each epoch, and the test split again at its end; the part of an epoch's time that takes is the plan's
    ``eval_share`` (:func:`eval_share`; 0 without ``train_images``).  A trial ending at the deadline also keeps
    time for ``closing_views`` more passes, the closing ensemble's test-time augmentation
    (:meth:`BudgetPlan.closing_passes`).

    Example:
        >>> models = "{type: categorical, choices: [resnet9, resnet18]}"
        >>> space = SearchSpace.from_yaml("{fixed: {epochs: 8}, params: {model: %s}}" % models)
        >>> plan(space, {"resnet9@1": 30.0, "resnet18@1": 400.0}, budget_s=600, slots=2).skipped
        {'resnet18': "an epoch takes ~400 s here; its first rung (1 epoch) does not fit a trial's share (200 s)"}
    """
    share = budget_s / TRIALS_PER_SLOT  # each slot runs its trials one after the other
    enough = enough_epochs(space, train_images)
    evaluating = eval_share(trained_per_epoch(space, train_images), eval_images) if train_images else 0.0

    def fitted_to(grace: int) -> tuple[dict, dict]:
        epochs, allotted = {}, {}
        for key, seconds in measured.items():
            if grace * seconds <= share:
                fitted, allotted[key] = int(share / seconds), share
                if fitted < enough:
                    # Not even TRIALS_PER_SLOT full-length trials fit: an under-trained model gains
                    # more from epochs than an ensemble gains from a second one (on CIFAR-10 in 20
                    # minutes on 2 cores, 7 trials ensembled: 82.2%; the seed recipe alone: 84.0%; the
                    # two seeds for 13 epochs each, ensembled: 88.8%, the first for 24: 89.5%, 2026-12-01).
                    # So a trial may take the slot's whole budget; the seed recipe runs first.  On a small
                    # split the passes past ENOUGH_PASSES gain less than a second member.
                    fitted, allotted[key] = int(budget_s / seconds), budget_s
                epochs[key] = max(grace, min(space.max_epochs, fitted))
        return epochs, allotted

    grace = space.grace_period
    epochs, allotted = fitted_to(grace)
    first_rung = int(min(epochs.values()) * FIRST_RUNG_PART) if epochs else 0
    if first_rung > grace:
        grace = first_rung
        epochs, allotted = fitted_to(grace)
    fastest = {}
    for key, seconds in measured.items():
        fastest[_model(key)] = min(fastest.get(_model(key), seconds), seconds)
    kept = {_model(key) for key in epochs}
    skipped = {m: f"an epoch takes ~{s:.0f} s here; its first rung ({grace} epoch{'s' * (grace > 1)}) does not fit "
                  f"a trial's share ({share:.0f} s)" for m, s in fastest.items() if m not in kept}
    if not epochs:
        key = min(measured, key=measured.get)
        skipped.pop(_model(key))
        # its first rung, or the whole budget where that is longer: the trial re-fits its epochs to it (a
        # 2-minute CPU search's only trial, given its one epoch's 62 s, ended with 37 s of the budget unused)
        epochs[key], allotted[key] = grace, max(grace * measured[key], budget_s)
    # widths of a kept model that are too slow still run, at one rung
    epochs.update({key: grace for key in measured if _model(key) in kept and key not in epochs})
    # the widths above run their first rung only: given that rung's time (the fallback has its own above)
    allotted.update({key: grace * measured[key] for key in epochs if key not in allotted})
    return BudgetPlan(dict(measured), epochs, skipped, grace, allotted, evaluating,
                      space_grace_period=space.grace_period if grace > space.grace_period else 0, share=share,
                      closing_views=closing_views)


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()

