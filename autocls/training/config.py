"""One training run's recipe as plain data.

Flat on purpose: every field is one hyperparameter that a search space can
sample, a YAML file can set and ``autocls train --field value`` can override.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from autocls.errors import UserError, short_repr
from autocls.files import load_yaml

# Where and how a run executes, not what it learns: a search space may not search or fix these.
RUNTIME_FIELDS = ("dataset", "data_dir", "device", "compile", "checkpoint_share", "seed")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("cosine", "multistep", "step", "onecycle", "cyclic", "plateau", "constant")
LOSSES = ("ce", "focal")
CLASS_WEIGHTINGS = ("none", "inverse", "class_balanced")


@dataclass
class TrainConfig:
    """Everything one trial needs; defaults are a sound small-image recipe.

    Example:
        >>> cfg = TrainConfig.from_dict({"dataset": "digits", "model": "lenet", "epochs": 3})
        >>> cfg.optimizer, cfg.lr
        ('sgd', 0.05)
    """

    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.1
    model: str = "resnet18"
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
    amp: bool = True  # bf16 autocast; used on CUDA only
    channels_last: bool = True
    compile: bool = False
    eval_every: int = 1
    # Most of the training time that writing last.pt (model + optimizer) may take;
    # 1 writes it every evaluated epoch.  See trainer.train.
    checkpoint_share: float = 0.02
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first field that is out of range."""
        choices = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": LOSSES, "class_weighting": CLASS_WEIGHTINGS,
                   "auto_augment": ("none", "randaugment", "trivialaugment", "autoaugment")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"{key}: '{getattr(self, key)}' is not one of {', '.join(allowed)}")
        positive = ("epochs", "batch_size", "lr", "eval_every", "checkpoint_share", "width")
        for key in positive:
            if not getattr(self, key) > 0:
                raise UserError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("weight_decay", "mixup_alpha", "cutmix_alpha", "cutout", "crop_padding", "warmup_epochs"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("label_smoothing", "mixup_prob", "momentum"):
            if not 0 <= getattr(self, key) <= 1:
                raise UserError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if not 0 < self.class_balanced_beta < 1:
            raise UserError(f"class_balanced_beta must be in (0, 1), got {self.class_balanced_beta}")
        if not 0 <= self.randaugment_magnitude <= 30:  # RandAugment's 31 magnitude bins
            raise UserError(f"randaugment_magnitude must be in [0, 30], got {self.randaugment_magnitude}")
        if not 0 <= self.seed < 2**32:  # numpy's and torch's seed range
            raise UserError(f"seed must be in [0, 2**32), got {self.seed}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise UserError(f"device: '{self.device}' is not one of auto, cpu, cuda, cuda:N, mps")
        if not all(0 < m < 1 for m in self.milestones):
            raise UserError(f"milestones must be fractions of the epochs in (0, 1), got {self.milestones}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a mapping, refusing unknown keys and wrong types with one clear line."""
        known = set(cls.field_names())
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(known))}")
        defaults = cls()
        coerced = {}
        for key, value in values.items():
            default = getattr(defaults, key)
            if default is None:  # optional fields: coerce to the type they take when set
                default = {"image_size": 0, "data_dir": ""}[key]
            coerced[key] = _coerce(key, value, default)
        return cls(**coerced)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> "TrainConfig":
        path = Path(path)
        if not path.exists():
            raise UserError(f"config file '{path}' does not exist")
        values = load_yaml(path.read_text(), str(path)) or {}
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
        return cls.from_dict({**values, **(overrides or {})})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
