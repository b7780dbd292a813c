"""One training run as plain data: the recipe (what it learns) and the runtime (where it runs).

:class:`TrainConfig` is the recipe, flat on purpose: every field is one
hyperparameter that a search space can sample, a YAML file can set and
``autocls train --field value`` can override.  :class:`Runtime` is the rest:
the data's location, the device, compilation, checkpoint cadence and the
seed, which a space may not name (the command line sets them).

Example:
    >>> cfg, runtime = from_settings({"dataset": "digits", "model": "lenet", "device": "cpu"})
    >>> cfg.model, runtime.dataset, runtime.device
    ('lenet', 'digits', 'cpu')
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from autocls.data.augment import AUTO_AUGMENT_POLICIES
from autocls.errors import UserError, short_repr
from autocls.files import load_yaml
from autocls.training.losses import CLASS_WEIGHTINGS, LOSSES
from autocls.training.optim import OPTIMIZERS, SCHEDULERS

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # what Runtime.device takes (N: a GPU's index)
# The most epochs a run with a time budget and no `epochs` of its own trains (it trains as many as fit): the length
# of the common CIFAR recipes (Wide ResNets, Zagoruyko & Komodakis 2016: 200).  The default `epochs` is a quick run's.
BUDGET_MAX_EPOCHS = 200
# `autocls train` halves a batch it was not given until an epoch makes this many steps (batch_for_data), down to
# MIN_FITTED_BATCH: a recipe's batch is for 50,000 images, and on a 600-photo folder it made 1-3 steps an epoch.
# The floor dates from airbench diverging at batch 16 on 216 digits, a BatchNorm eps since mended (it then reached
# 88.33% and 86.67% test there); batches under 32 are otherwise unmeasured.
MIN_STEPS_PER_EPOCH = 10
MIN_FITTED_BATCH = 32
# The images an epoch of `autocls train` makes, in whole passes, over a split of fewer (under 667) where the run sets
# no `epoch_images` (passes_for_data), after fitting the batch: at batch 32, 10 one-pass epochs of 216 digit PNGs were
# 60 steps, and LeNet reached 10-17% test (3 seeds)
MIN_EPOCH_IMAGES = 1000
# The image side the recipes' crop paddings are for (CIFAR's); `autocls train` scales a padding it was not given down
# to smaller images (crop_for_data)
RECIPE_IMAGE_SIDE = 32
# The largest image side the zoo's nets train at where a run sets no `image_size` (size_for_data): they are made for
# 8-64 px images, Tiny ImageNet's size the largest
ZOO_MAX_IMAGE_SIDE = 64
# The recipe's fields that take one of a few names, and the names
CHOICES = {
    "optimizer": tuple(OPTIMIZERS),
    "scheduler": tuple(SCHEDULERS),
    "loss": LOSSES,
    "class_weighting": tuple(CLASS_WEIGHTINGS),
    "auto_augment": AUTO_AUGMENT_POLICIES,
}


class _Fields:
    """Building from a mapping with one-line errors, shared by the recipe and the runtime."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a mapping, refusing unknown keys and wrong types with one clear line."""
        known = set(cls.field_names())
        unknown = sorted(set(values) - known)
        if unknown:
            other = RUNTIME_FIELDS if cls is TrainConfig else TrainConfig.field_names()
            where = [k for k in unknown if k in other]
            if where:
                kind = "a runtime setting, not part of the recipe" if cls is TrainConfig else \
                    "part of the recipe, not a runtime setting"
                raise UserError(f"{where[0]} is {kind}")
            raise UserError(f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(known))}")
        defaults = cls()
        coerced = {}
        for key, value in values.items():
            default = getattr(defaults, key)
            if default is None:  # optional fields: coerce to the type they take when set
                default = {"image_size": 0, "data_dir": ""}[key]
            coerced[key] = _coerce(key, value, default)
        return cls(**coerced)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Runtime(_Fields):
    """Where and how a run executes, not what it learns.

    Example:
        >>> Runtime(dataset="cifar10", data_dir="/data", device="cuda").device
        'cuda'
    """

    dataset: str = "digits"
    data_dir: str | None = None
    device: str = "auto"
    compile: bool = False
    # Most of the training time that writing last.pt (model + optimizer) may take;
    # 1 writes it every evaluated epoch.  See trainer.train.
    checkpoint_share: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.checkpoint_share > 0:
            raise UserError(f"checkpoint_share must be > 0, got {self.checkpoint_share}")
        if not 0 <= self.seed < 2**32:  # numpy's and torch's seed range
            raise UserError(f"seed must be in [0, 2**32), got {self.seed}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise UserError(f"device: '{self.device}' is not one of {', '.join(DEVICES)}")


# A search space may not search or fix these.
RUNTIME_FIELDS = tuple(f.name for f in dataclasses.fields(Runtime))


@dataclass
class TrainConfig(_Fields):
    """The recipe of one run: what a search space samples; defaults are a sound small-image recipe (a ResNet's:
    SGD at 0.05, cosine, batch 128), under which the default model, airbench, trains with its own
    (:func:`from_settings`; a TrainConfig built in Python is taken as it is).

    Example:
        >>> cfg = TrainConfig.from_dict({"model": "lenet", "epochs": 3})
        >>> cfg.optimizer, cfg.lr
        ('sgd', 0.05)
    """

    val_fraction: float = 0.1
    # airbench: the zoo's fastest small-image net, trained with its own recipe (airbench94's, models.model_recipe)
    # where a run or space names no model. ResNet-18 was the default: `autocls train --time-budget` on 2 CPU cores
    # on the shared CIFAR-10 photos trained it to 71.0% test in 2 minutes and 80.3% in 5 where airbench reached
    # 82.5% and 86.0%, and on digits 98.6% in 21 s where airbench reached 99.2% in 8 (benchmarks/default_model.py)
    model: str = "airbench"
    width: float = 1.0  # channel multiplier of the CIFAR nets that have one (resnet*, wrn*, resnet9, lenet)
    pretrained: bool = False
    image_size: int | None = None  # resize on the device, e.g. 224 for ImageNet backbones
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    bias_lr_scale: float = 1.0  # norms' and biases' learning rate over lr (airbench: 64)
    lookahead: bool = False  # timm's Lookahead around the optimizer (k=5, alpha=0.5)
    ramped_average: bool = False  # airbench's weight averaging, copied into the model (optim.RampedAverage)
    beta1: float = 0.9
    beta2: float = 0.999
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of `epochs`
    gamma: float = 0.1
    step_size: int = 30
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    auto_augment: str = "none"
    randaugment_magnitude: int = 9
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mixup_prob: float = 1.0
    label_smoothing: float = 0.0
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weighting: str = "none"
    class_balanced_beta: float = 0.9999
    weighted_sampling: bool = False
    # tau of the logit-adjusted loss (Menon et al. 2021): the loss sees logits + tau * log(class prior), so the
    # model learns to lean toward rare classes; 0: off, 1: the paper's
    logit_adjustment: float = 0.0
    amp: bool = True  # bf16 autocast where the device runs it fast (GPUs, CPUs with bf16 instructions)
    channels_last: bool = True
    eval_every: int = 1
    # Images an epoch trains on, about: a smaller training split is passed over round(epoch_images / its size)
    # times an epoch (evaluated once; at most 30, MAX_PASSES_PER_EPOCH), so a space's epochs keep their meaning
    # on less data (0: one pass).
    epoch_images: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first field that is out of range."""
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"{key}: '{getattr(self, key)}' is not one of {', '.join(allowed)}")
        positive = ("epochs", "batch_size", "lr", "eval_every", "width", "bias_lr_scale")
        for key in positive:
            if not getattr(self, key) > 0:
                raise UserError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("weight_decay", "mixup_alpha", "cutmix_alpha", "cutout", "crop_padding", "warmup_epochs",
                    "epoch_images", "logit_adjustment"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("label_smoothing", "mixup_prob", "momentum"):
            if not 0 <= getattr(self, key) <= 1:
                raise UserError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if not 0 < self.class_balanced_beta < 1:
            raise UserError(f"class_balanced_beta must be in (0, 1), got {self.class_balanced_beta}")
        if not 0 <= self.randaugment_magnitude <= 30:  # RandAugment's 31 magnitude bins
            raise UserError(f"randaugment_magnitude must be in [0, 30], got {self.randaugment_magnitude}")
        if not all(0 < m < 1 for m in self.milestones):
            raise UserError(f"milestones must be fractions of the epochs in (0, 1), got {self.milestones}")


# The fields a model's recipe tunes for its own optimizer (airbench's SGD: lr 0.375, its norms and biases at 64x that).
# Under an optimizer a run or a space names instead they are dropped: `autocls train --optimizer adam --time-budget
# 90s` on the shared CIFAR-10 photos reached 80.6%, 79.3% and 64.5% test at lr 0.003, 0.01 and 0.03 with airbench's,
# 80.6%, 82.5% and 80.9% without; on digits (2 seeds) Adam at 0.1 17.0% and 17.3%, with the norms and biases at 1x
# the lr 98.9% and 97.2%, RMSprop at 0.03 25.9% and 17.3%, at 1x 99.2% and 98.9%.  The README's example space
# samples these optimizers over lr 1e-4-0.2.
OPTIMIZER_FIELDS = ("lr", "momentum", "nesterov", "weight_decay", "bias_lr_scale")


def from_settings(values: dict) -> tuple[TrainConfig, Runtime]:
    """A flat mapping (a YAML file, command-line flags) as the recipe and the runtime.

    The model's own recipe fields (:func:`autocls.models.model_recipe`: airbench
    trains with airbench94's) sit under the dataset's (:func:`autocls.data.dataset_recipe`:
    digits' 8x8 images train with a 1-pixel crop and no flips), and both under
    ``values``: what a run sets wins.  A dataset's ``batch_size`` is the largest
    its images train with: a model's smaller one stays.  A model's step sizes
    (:data:`OPTIMIZER_FIELDS`) are for its own optimizer: under another that
    ``values`` name, the defaults' stand.

    Example:
        >>> [from_settings({"dataset": "digits", "model": m})[0].batch_size for m in ("airbench", "lenet")]
        [128, 32]
        >>> cfg = from_settings({})[0]  # no model named: the default's, with its own recipe
        >>> cfg.model, cfg.scheduler, cfg.label_smoothing, cfg.bias_lr_scale
        ('airbench', 'triangle', 0.2, 64.0)
        >>> cfg = from_settings({"optimizer": "adam", "lr": 0.01})[0]  # airbench's schedule, not its SGD's steps
        >>> cfg.scheduler, cfg.label_smoothing, cfg.bias_lr_scale, cfg.weight_decay
        ('triangle', 0.2, 1.0, 0.0005)
    """
    from autocls.data.registry import dataset_recipe
    from autocls.models.registry import model_recipe

    model_fields = model_recipe(values.get("model", TrainConfig.model))
    recipe_optimizer = model_fields.get("optimizer", TrainConfig.optimizer)
    if values.get("optimizer", recipe_optimizer) != recipe_optimizer:
        model_fields = {k: v for k, v in model_fields.items() if k not in OPTIMIZER_FIELDS}
    data_fields = dataset_recipe(values.get("dataset", Runtime.dataset))
    if "batch_size" in data_fields and "batch_size" in model_fields:  # a dataset's batch is the largest its images take
        data_fields["batch_size"] = min(data_fields["batch_size"], model_fields["batch_size"])
    values = {**model_fields, **data_fields, **values}
    runtime = {k: v for k, v in values.items() if k in RUNTIME_FIELDS}
    return TrainConfig.from_dict({k: v for k, v in values.items() if k not in RUNTIME_FIELDS}), Runtime.from_dict(runtime)


def batch_for_data(cfg: TrainConfig, train_images: int) -> TrainConfig:
    """``cfg`` with its batch halved until an epoch of ``train_images`` makes :data:`MIN_STEPS_PER_EPOCH` steps (down
    to :data:`MIN_FITTED_BATCH`), its ``lr`` scaled by the square root of the batch's change; ``cfg`` itself where its
    batch makes enough.

    The square root (Krizhevsky 2014; Hoffer et al. 2017) rather than the linear rule: on a 600-photo folder
    (432 training images), 10 epochs, ResNet-18 at batch 128 reached 25% test (4 seeds), 44% at 32 with the root's
    lr, 47% with the linear one; airbench at its 256: 23%, at 32 with the root's lr 46-49%, the linear one's 39%.

    Example:
        >>> cfg = batch_for_data(TrainConfig(batch_size=256, lr=0.4), train_images=432)
        >>> cfg.batch_size, round(cfg.lr, 4)
        (32, 0.1414)
        >>> batch_for_data(TrainConfig(batch_size=128), train_images=45_000).batch_size
        128
    """
    from autocls.data.loader import steps_per_epoch

    batch = cfg.batch_size
    while batch > MIN_FITTED_BATCH and steps_per_epoch(train_images, batch, cfg.epoch_images) < MIN_STEPS_PER_EPOCH:
        batch = max(MIN_FITTED_BATCH, batch // 2)
    if batch == cfg.batch_size:
        return cfg
    return dataclasses.replace(cfg, batch_size=batch, lr=cfg.lr * math.sqrt(batch / cfg.batch_size))


def passes_for_data(cfg: TrainConfig, train_images: int) -> TrainConfig:
    """``cfg`` with epochs of about :data:`MIN_EPOCH_IMAGES` images (``epoch_images``: whole passes over the split)
    where two passes or more of ``train_images`` come nearer that (under 667 images); ``cfg`` itself otherwise, or
    where it sets its own.

    The default run's 10 epochs are a quick run's on thousands of images; on a few hundred they are too few steps
    to learn.  10 epochs at the batch :func:`batch_for_data` fits (32), 2026-12-04: 300 digit PNGs (216 training
    images, 60 test; decoded to three channels then) at 5 passes an epoch, LeNet 26.67%/10.00%/13.33% →
    86.67%/80.00%/90.00% test (3 seeds), airbench 85.00%/46.67% → 100%/91.67%, ResNet-18 83.33%/76.67% →
    91.67%/95.00%; 600 CIFAR-10 photos (432) at 2 passes, scored on 2,000 other photos of the shared set:
    airbench 46.95%/46.05% → 48.50%/47.70%, ResNet-18 36.20%/33.15% → 36.65%/39.85%, in about twice the time.
    Passes rather than a larger batch: at 5 passes and the batch 128 those steps would allow, airbench scored
    43.70%/44.85% on the same 2,000.

    Example:
        >>> passes_for_data(TrainConfig(), train_images=216).epoch_images
        1000
        >>> passes_for_data(TrainConfig(), train_images=1_294).epoch_images  # one pass is about as many
        0
    """
    from autocls.data.loader import passes_per_epoch

    if cfg.epoch_images or passes_per_epoch(train_images, MIN_EPOCH_IMAGES) == 1:
        return cfg
    return dataclasses.replace(cfg, epoch_images=MIN_EPOCH_IMAGES)


def size_for_data(cfg: TrainConfig, image_side: int) -> TrainConfig:
    """``cfg`` at ``image_size`` :data:`ZOO_MAX_IMAGE_SIDE` where its model is one of the zoo's and the images'
    shorter side, ``image_side``, is larger; ``cfg`` itself where it sets an ``image_size`` (0: as decoded), or its
    model is a ``timm/`` one.

    The zoo's nets keep every pixel of a CIFAR photo in their first stage (a stride-1 stem, no max-pool): at a
    photo's 341x256 (its shorter side capped at 256 when decoded) ResNet-18 took 20.9 s a step of 32 images on 2
    CPU cores, 39x its 0.54 s at 64x64 (`benchmarks/photo_size.py`): 10 epochs of 400 photos, 27 steps each, would
    have taken `autocls train ./photos` about an hour and a half.  timm's ImageNet nets downsample 4x at their stem
    (0.97 s a step at 341x256): they keep the size.

    Example:
        >>> size_for_data(TrainConfig(model="resnet18"), image_side=256).image_size
        64
        >>> size_for_data(TrainConfig(model="resnet18"), 32).image_size
        >>> size_for_data(TrainConfig(model="timm/resnet18"), 256).image_size
    """
    if cfg.image_size is not None or cfg.model.startswith("timm/") or image_side <= ZOO_MAX_IMAGE_SIDE:
        return cfg
    return dataclasses.replace(cfg, image_size=ZOO_MAX_IMAGE_SIDE)


def crop_for_data(cfg: TrainConfig, image_side: int) -> TrainConfig:
    """``cfg`` with its ``crop_padding`` scaled to images of ``image_side`` pixels, where they are smaller than the
    :data:`RECIPE_IMAGE_SIDE` its recipes are for (at least 1 pixel); ``cfg`` itself otherwise.

    A padding shifts the image by up to that many pixels: 4 is an eighth of a CIFAR photo and half an 8x8 digit.
    scikit-learn's digits saved as 8x8 PNGs, 10 epochs, 3 seeds: ResNet-18 reached 37% test at a 4-pixel padding
    and 89% at 1, airbench 96.8% at its 2 and 97.2% at 1; 5,000 CIFAR-10 photos at 16 pixels: ResNet-18 44% at 4,
    48% at 2.  Larger images keep their recipe's padding (not measured here).

    Example:
        >>> crop_for_data(TrainConfig(crop_padding=4), image_side=8).crop_padding
        1
        >>> crop_for_data(TrainConfig(crop_padding=4), image_side=16).crop_padding
        2
        >>> crop_for_data(TrainConfig(crop_padding=4), image_side=64).crop_padding
        4
    """
    if not cfg.crop_padding or image_side >= RECIPE_IMAGE_SIDE:
        return cfg
    return dataclasses.replace(cfg, crop_padding=max(1, round(cfg.crop_padding * image_side / RECIPE_IMAGE_SIDE)))


def fit_to_data(cfg: TrainConfig, train_images: int, image_side: int, given=frozenset(),
                dataset: str | None = None) -> TrainConfig:
    """``cfg`` with the fields neither a run sets (``given``) nor ``dataset``'s recipe does
    (:func:`autocls.data.dataset_recipe`) fitted to a training split of ``train_images`` images of ``image_side``
    pixels (the shorter side): its image size (:func:`size_for_data`), its batch (:func:`batch_for_data`), then its
    passes an epoch (:func:`passes_for_data`, at that batch), then its crop padding (:func:`crop_for_data`, at
    ``cfg.image_size`` where it has one).  What ``autocls train``
    trains, and each trial of a search (``given``: what its space sets).

    Example:
        >>> cfg = fit_to_data(TrainConfig(), train_images=216, image_side=8)
        >>> cfg.batch_size, cfg.epoch_images, cfg.crop_padding
        (32, 1000, 1)
        >>> fit_to_data(TrainConfig(), 216, 8, given={"batch_size", "epoch_images", "crop_padding"}) == TrainConfig()
        True
        >>> fit_to_data(TrainConfig(crop_padding=1), 216, 8, dataset="digits").batch_size  # digits' own batch
        128
    """
    from autocls.data.registry import dataset_recipe

    kept = set(given) | (dataset_recipe(dataset).keys() if dataset else set())
    if "image_size" not in kept:
        cfg = size_for_data(cfg, image_side)
    if "batch_size" not in kept:
        cfg = batch_for_data(cfg, train_images)
    if "epoch_images" not in kept:
        cfg = passes_for_data(cfg, train_images)
    if "crop_padding" not in kept:
        cfg = crop_for_data(cfg, cfg.image_size or image_side)  # the trainer crops after resizing to image_size
    return cfg


def load_settings(path: str | Path, overrides: dict | None = None) -> tuple[TrainConfig, Runtime]:
    """A YAML file of recipe and runtime fields, with ``overrides`` on top."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file '{path}' does not exist")
    values = load_yaml(path.read_text(), str(path)) or {}
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return from_settings({**values, **(overrides or {})})


OPTIONAL_FIELDS = ("data_dir", "image_size")  # the only fields whose "not set" is None


def _coerce(key: str, value, default):
    """Accept YAML/CLI values of the right type; ints where floats are expected."""
    is_null = value is None or (isinstance(value, str) and value.lower() in ("none", "null") and not isinstance(default, str))
    if is_null:
        if key in OPTIONAL_FIELDS:
            return None
        raise UserError(f"{key}: a value is required, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool)
                                                    for v in items):
            try:
                return [float(v) for v in items if not isinstance(v, str) or v.strip()]
            except ValueError:
                pass
    raise UserError(f"{key}: expected {type(default).__name__}, got {short_repr(value)}")
