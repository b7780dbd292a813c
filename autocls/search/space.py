"""Search spaces as YAML: parsed, checked before any trial starts, sampled with Optuna.

A space file::

    dataset: digits                 # default dataset for `autocls search`
    objectives: [val_acc]           # or [val_acc, num_params] for a Pareto front
    directions: [maximize]
    asha: {grace_period: 2, reduction_factor: 3}
    fixed: {batch_size: 64}         # TrainConfig fields held constant
    params:
      optimizer: {type: categorical, choices: [sgd, adam]}
      lr: {type: float, low: 1.0e-4, high: 0.3, log: true}
      momentum: {type: float, low: 0.8, high: 0.99, when: {optimizer: [sgd]}}
    seeds:                          # known-good recipes: run first, and to their end
      - {optimizer: sgd, lr: 0.1, momentum: 0.9}

A parameter with ``when`` is sampled only if every named parent took one of
the listed values, so it appears in a trial's params only then.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from autocls.errors import UserError, short_repr
from autocls.files import load_yaml
from autocls.metrics import RANKING_METRICS, ranking_metric_named
from autocls.training.config import RUNTIME_FIELDS, TrainConfig

if TYPE_CHECKING:
    import optuna

SPACES_DIR = Path(__file__).resolve().parents[1] / "spaces"  # package data: shipped in the wheel
TOP_LEVEL_KEYS = {"name", "description", "dataset", "objectives", "directions", "asha", "fixed", "params", "seeds"}
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}
ASHA_KEYS = {"grace_period", "reduction_factor"}
METRICS = {"val_acc": "maximize", "val_balanced_acc": "maximize", "val_loss": "minimize", "num_params": "minimize",
           "images_per_s": "maximize", "epoch_time": "minimize"}

# What a first objective may be: the objectives of autocls.metrics.RANKING_METRICS, and their metrics' names.
RANKING_OBJECTIVES = {metric.objective: name for name, metric in RANKING_METRICS.items()}


@dataclass
class Param:
    """One sampled hyperparameter."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list | None = None
    when: dict[str, list] = field(default_factory=dict)

    def suggest(self, trial):
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value) -> bool:
        if self.type == "categorical":
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def active(self, values: dict) -> bool:
        return all(values.get(parent) in allowed for parent, allowed in self.when.items())


@dataclass
class SearchSpace:
    """A parsed and checked space; :meth:`sample` draws one trial's TrainConfig values.

    Example:
        >>> import optuna
        >>> space = SearchSpace.load("digits")
        >>> study = optuna.create_study(direction="maximize")
        >>> values = space.sample(study.ask())
        >>> TrainConfig.from_dict(values).model in space.params["model"].choices
        True
    """

    name: str
    dataset: str | None
    params: dict[str, Param]
    fixed: dict[str, Any]
    objectives: list[str]
    directions: list[str]
    grace_period: int
    reduction_factor: int
    seeds: list[dict]
    description: str = ""
    source: str = ""

    @property
    def max_epochs(self) -> int:
        """The longest any trial trains: ASHA's ``max_t``."""
        return int(self.largest("epochs", TrainConfig.epochs))

    def largest(self, name: str, default=None):
        """The largest value ``name`` takes in this space: its highest choice or bound, its fixed value, or ``default``.

        Example:
            >>> SearchSpace.from_yaml("params: {batch_size: {type: categorical, choices: [128, 512]}}").largest("batch_size")
            512
        """
        if name in self.params:
            param = self.params[name]
            return max(param.choices) if param.type == "categorical" else param.high
        return self.fixed.get(name, default)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def ranking_metric(self) -> str:
        """What trials are ranked by: ``"accuracy"`` (top-1) or ``"balanced_accuracy"``, from the first objective.

        Example:
            >>> SearchSpace.load("cpu-small").ranked_by("balanced_accuracy").ranking_metric
            'balanced_accuracy'
        """
        return RANKING_OBJECTIVES[self.objectives[0]]

    def ranked_by(self, metric: str) -> "SearchSpace":
        """The same space ranking trials by ``metric`` (its first objective replaced), its YAML text to match.

        Example:
            >>> space = SearchSpace.load("cpu-small").ranked_by("balanced_accuracy")
            >>> space.objectives, SearchSpace.from_yaml(space.source).objectives
            (['val_balanced_acc'], ['val_balanced_acc'])
        """
        objective = ranking_metric_named(metric).objective
        if objective == self.objectives[0]:
            return self
        return self._edited(lambda raw: raw.update(objectives=[objective, *self.objectives[1:]]))

    def with_fixed(self, values: dict) -> "SearchSpace":
        """The same space with ``values`` fixed (parameters of those names no longer searched).

        Example:
            >>> space = SearchSpace.load("cpu-small").with_fixed({"class_weighting": "class_balanced"})
            >>> space.fixed["class_weighting"]
            'class_balanced'
        """
        def fix(raw: dict) -> None:
            raw["fixed"] = {**(raw.get("fixed") or {}), **values}
            raw["params"] = {k: v for k, v in (raw.get("params") or {}).items() if k not in values}
            raw["seeds"] = [{k: v for k, v in seed.items() if k not in values} for seed in raw.get("seeds") or []]
        return self._edited(fix)

    def without_seeds(self) -> "SearchSpace":
        """The same space without its seed recipes: every trial is the sampler's draw.

        Example:
            >>> space = SearchSpace.load("cpu-small")
            >>> len(space.seeds), space.without_seeds().seeds, space.without_seeds().params == space.params
            (2, [], True)
        """
        return self._edited(lambda raw: raw.pop("seeds", None))

    def _edited(self, edit: Callable[[dict], None]) -> "SearchSpace":
        # Through the YAML, so that the text a study keeps (and build-ensemble and a resumed search read) is
        # the space that was searched.
        raw = load_yaml(self.source, self.name)
        edit(raw)
        text = yaml.safe_dump(raw, sort_keys=False)
        return parse_space(raw, self.name, text)

    def sample(self, trial) -> dict:
        """Define-by-run sampling: fixed values, then each active parameter in file order."""
        values = dict(self.fixed)
        for param in self.params.values():
            if param.active(values):
                values[param.name] = param.suggest(trial)
        return values

    def restricted_to_models(self, models: list[str]) -> "SearchSpace":
        """The same space with its model choices narrowed to ``models`` (kept in file order)."""
        return self.restricted_to_choices("model", models)

    def restricted_to_choices(self, name: str, kept: list) -> "SearchSpace":
        """The same space with the choices of categorical ``name`` narrowed to ``kept`` (in file order).

        Unchanged when ``name`` is not categorical or none of its choices would be left.

        Example:
            >>> space = SearchSpace.load("cpu-small")
            >>> space.params["width"].choices
            [0.375, 0.5, 0.75]
            >>> space.restricted_to_choices("width", [0.375]).params["width"].choices
            [0.375]
        """
        param = self.params.get(name)
        if param is None or param.type != "categorical" or set(param.choices) <= set(kept):
            return self
        choices = [c for c in param.choices if c in kept]
        if not choices:
            return self
        return dataclasses.replace(self, params={**self.params, name: dataclasses.replace(param, choices=choices)})

    def trial_config(self, values: dict, dataset: str | None = None, train_images: int | None = None,
                     image_side: int | None = None) -> TrainConfig:
        """What a trial of ``values`` (drawn from this space; its fixed ones under them) trains on ``dataset``: what
        ``autocls train`` would train were it given them (:func:`~autocls.training.config.from_settings`: the values
        over the dataset's recipe, over the model's), with the fields neither this space nor the dataset sets fitted
        to a training split of ``train_images`` images of ``image_side`` pixels
        (:func:`~autocls.training.config.fit_to_data`).

        Example:
            >>> space = SearchSpace.from_yaml("params: {model: {type: categorical, choices: [lenet, resnet9]}}")
            >>> cfg = space.trial_config({"model": "lenet"}, "./my_digits", train_images=216, image_side=8)
            >>> cfg.batch_size, cfg.lr, cfg.epoch_images, cfg.crop_padding  # LeNet's own, 5 passes
            (32, 0.025, 1000, 1)
            >>> space.with_fixed({"batch_size": 64}).trial_config({"model": "lenet"}).batch_size
            64
        """
        from autocls.training.config import fit_to_data, from_settings

        cfg = from_settings({**({"dataset": dataset} if dataset else {}), **self.fixed, **values})[0]
        if train_images is None:
            return cfg
        return fit_to_data(cfg, train_images, image_side, self.fixed.keys() | self.params.keys(), dataset)

    def values_from_params(self, params: dict) -> dict:
        """The TrainConfig values of an already-sampled trial (for re-running it)."""
        return {**self.fixed, **params}

    @classmethod
    def load(cls, name_or_path: str | Path) -> "SearchSpace":
        """Load a shipped space by name (``autocls/spaces/<name>.yaml``) or a YAML file path."""
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UserError(f"search space '{name_or_path}' not found; known: {', '.join(list_spaces())}, or a YAML path")
        return cls.from_yaml(path.read_text(), source=str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> "SearchSpace":
        raw = load_yaml(text, source)
        return parse_space(raw, source, text)

    # A study keeps the space its search was started with (its YAML text and name, in the study's user
    # attributes): a resumed search, the ensemble and the report read it there.
    def keep_in(self, study: optuna.Study) -> None:
        """Write this space into ``study``, where :meth:`of_study` reads it back."""
        study.set_user_attr("space", self.source)
        study.set_user_attr("space_name", self.name)

    @classmethod
    def of_study(cls, study: optuna.Study) -> SearchSpace | None:
        """The space kept in ``study`` by :meth:`keep_in`; None for a study no search wrote.

        Example:
            >>> import optuna
            >>> study = optuna.create_study()
            >>> SearchSpace.of_study(study) is None
            True
            >>> SearchSpace.load("digits").keep_in(study)
            >>> SearchSpace.of_study(study).ranking_metric
            'accuracy'
        """
        text = study.user_attrs.get("space")
        return cls.from_yaml(text, source=study.user_attrs.get("space_name") or "<string>") if text else None


def list_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def preset_space(dataset: str, gpus: int) -> tuple[str, str]:
    """The shipped space (preset) for a dataset on this hardware, and why: no GPU gets small fast nets.

    Example:
        >>> preset_space("./my_photos", gpus=0)
        ('cpu-small', 'no GPU here: small fast nets, their epochs sized by --time-budget')
        >>> preset_space("cifar100", gpus=2)
        ('cifar100', 'the cifar100 space on 2 GPU(s)')
    """
    name = Path(dataset).name
    if name == "digits":
        return "digits", "scikit-learn's digits"
    if not gpus:
        return "cpu-small", "no GPU here: small fast nets, their epochs sized by --time-budget"
    if name in list_spaces():
        return name, f"the {name} space on {gpus} GPU(s)"
    if name.startswith("cifar100"):
        return "cifar100", f"CIFAR-100 on {gpus} GPU(s)"
    return "cifar10", f"small images on {gpus} GPU(s): the CIFAR-10 space"  # ImageFolders included


def _fail(source: str, where: str, problem: str):
    raise UserError(f"{source}: {where}: {problem}")


def _number(source, where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(source, where, f"expected a number, got {short_repr(value)}")
    return value


def _parse_param(source: str, name: str, spec, earlier: dict[str, Param]) -> Param:
    where = f"params.{name}"
    if name in RUNTIME_FIELDS:
        _fail(source, where, "is a runtime setting (where a trial runs, not what it learns); it cannot be searched")
    if name not in TrainConfig.field_names():
        _fail(source, where, f"unknown parameter; TrainConfig fields are {', '.join(TrainConfig.field_names())}")
    if not isinstance(spec, dict):
        _fail(source, where, f"expected a mapping with 'type', got {short_repr(spec)}")
    unknown = set(spec) - PARAM_KEYS
    if unknown:
        _fail(source, where, f"unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(PARAM_KEYS)}")
    kind = spec.get("type")
    if kind not in ("float", "int", "categorical"):
        _fail(source, f"{where}.type", f"must be float, int or categorical, got {short_repr(kind)}")
    param = Param(name, kind)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            _fail(source, f"{where}.choices", "must be a non-empty list")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                _fail(source, f"{where}.choices", f"{short_repr(choice)} is not a bool, number or string")
            _check_value(source, where, name, choice)
        if len(set(map(repr, choices))) != len(choices):
            _fail(source, f"{where}.choices", "has duplicates")
        param.choices = choices
    else:
        for key in ("low", "high"):
            if key not in spec:
                _fail(source, where, f"'{key}' is required for type {kind}")
        low, high = _number(source, f"{where}.low", spec["low"]), _number(source, f"{where}.high", spec["high"])
        if not low < high:
            _fail(source, where, f"low ({low}) must be below high ({high})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            _fail(source, f"{where}.log", f"must be true or false, got {short_repr(log)}")
        if log and low <= 0:
            _fail(source, where, f"log scale needs low > 0, got {low}")
        step = spec.get("step")
        if step is not None:
            _number(source, f"{where}.step", step)
            if step <= 0 or step > high - low:
                _fail(source, f"{where}.step", f"must be in (0, high - low], got {step}")
            if log:
                _fail(source, where, "step and log cannot be combined")
        if kind == "int":
            for key, v in (("low", low), ("high", high), ("step", step)):
                if v is not None and float(v) != int(v):
                    _fail(source, f"{where}.{key}", f"must be an integer for type int, got {v}")
        param.low, param.high, param.log, param.step = low, high, log, step
        _check_value(source, where, name, int(low) if kind == "int" else float(low))
        _check_value(source, where, name, int(high) if kind == "int" else float(high))
    when = spec.get("when", {})
    if not isinstance(when, dict):
        _fail(source, f"{where}.when", f"expected a mapping parent: [values], got {short_repr(when)}")
    for parent, allowed in when.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if parent not in earlier:
            _fail(source, f"{where}.when", f"parent '{parent}' must be a parameter defined above '{name}'")
        if earlier[parent].type != "categorical":
            _fail(source, f"{where}.when", f"parent '{parent}' must be categorical")
        missing = [v for v in allowed if v not in earlier[parent].choices]
        if missing or not allowed:
            _fail(source, f"{where}.when", f"{missing or allowed} not among {parent}'s choices {earlier[parent].choices}")
        param.when[parent] = allowed
    return param


def _check_value(source: str, where: str, name: str, value) -> None:
    """A value must make a valid TrainConfig on its own (catches 'optimizer: lion', 'lr: -1')."""
    try:
        cfg = TrainConfig.from_dict({name: value})
        if name == "model":
            from autocls.models.registry import check_model_name

            check_model_name(cfg.model)
    except UserError as exc:
        _fail(source, where, str(exc))


def parse_space(raw, source: str = "<space>", text: str = "") -> SearchSpace:
    """Check a loaded YAML mapping and build a :class:`SearchSpace`; every problem names its key."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping with 'params', got {type(raw).__name__}")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        _fail(source, "top level", f"unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(TOP_LEVEL_KEYS)}")
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        _fail(source, "params", f"expected a mapping of parameter specs, got {type(params_raw).__name__}")
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        _fail(source, "fixed", f"expected a mapping of TrainConfig values, got {type(fixed).__name__}")
    runtime = sorted(set(fixed) & set(RUNTIME_FIELDS))
    if runtime:
        _fail(source, f"fixed.{runtime[0]}", "is a runtime setting (where a trial runs, not what it learns); "
                                              "set it on the command line")
    try:
        fixed = {k: v for k, v in TrainConfig.from_dict(fixed).to_dict().items() if k in fixed}
    except UserError as exc:
        _fail(source, "fixed", str(exc))
    if "model" in fixed:
        _check_value(source, "fixed.model", "model", fixed["model"])
    params: dict[str, Param] = {}
    for name, spec in params_raw.items():
        if name in fixed:
            _fail(source, f"params.{name}", "is also in 'fixed'; keep one")
        params[str(name)] = _parse_param(source, str(name), spec, params)
    if not params:
        _fail(source, "params", "no parameters to search")
    objectives = raw.get("objectives", ["val_acc"])
    if isinstance(objectives, str):
        objectives = [objectives]
    if not isinstance(objectives, list) or not objectives or any(o not in METRICS for o in objectives):
        _fail(source, "objectives", f"must be a list of {sorted(METRICS)}, got {short_repr(objectives)}")
    if objectives[0] not in RANKING_OBJECTIVES:
        _fail(source, "objectives", f"the first objective must be one of {', '.join(RANKING_OBJECTIVES)} "
                                    f"(ASHA ranks trials by it)")
    directions = raw.get("directions", [METRICS[o] for o in objectives])
    if isinstance(directions, str):
        directions = [directions]
    if not isinstance(directions, list) or len(directions) != len(objectives) or any(d not in ("maximize", "minimize") for d in directions):
        _fail(source, "directions", f"needs one of maximize/minimize per objective, got {short_repr(directions)}")
    asha = raw.get("asha") or {}
    if not isinstance(asha, dict) or set(asha) - ASHA_KEYS:
        _fail(source, "asha", f"expected a mapping with keys among {sorted(ASHA_KEYS)}, got {short_repr(asha)}")
    grace = asha.get("grace_period", 1)
    factor = asha.get("reduction_factor", 3)
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 1:
        _fail(source, "asha.grace_period", f"must be an integer >= 1, got {short_repr(grace)}")
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 1:
        _fail(source, "asha.reduction_factor", f"must be a number > 1, got {short_repr(factor)}")
    dataset = raw.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        _fail(source, "dataset", f"expected a dataset name, got {short_repr(dataset)}")
    seeds = raw.get("seeds") or []
    if not isinstance(seeds, list):
        _fail(source, "seeds", "expected a list of parameter mappings")
    for i, seed in enumerate(seeds):
        if not isinstance(seed, dict):
            _fail(source, f"seeds[{i}]", f"expected a mapping of parameter values, got {short_repr(seed)}")
        for key, value in seed.items():
            if key not in params:
                _fail(source, f"seeds[{i}].{key}", "is not a searched parameter")
            if not params[key].contains(value):
                _fail(source, f"seeds[{i}].{key}", f"{short_repr(value)} is outside the parameter's range or choices")
    space = SearchSpace(
        name=str(raw.get("name") or Path(source).stem), dataset=dataset, params=params, fixed=fixed,
        objectives=objectives, directions=directions, grace_period=grace, reduction_factor=factor, seeds=seeds,
        description=str(raw.get("description", "")), source=text,
    )
    if grace > space.max_epochs:
        _fail(source, "asha.grace_period", f"{grace} exceeds the longest trial ({space.max_epochs} epochs)")
    return space
