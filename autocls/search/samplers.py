"""Optuna samplers by name."""
from __future__ import annotations

from typing import Callable

import optuna

from autocls.errors import UserError

# Each sampler is declared once: `create_sampler` builds from this table and `--sampler`'s choices are its names.
SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    # multivariate with groups (a conditional space split into its groups, not flattened) and a constant liar, so
    # that trials running in parallel are not proposed on top of each other
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                                   n_startup_trials=5),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    # CMA-ES models only numeric params; categoricals go to the independent sampler, as documented
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
}
SINGLE_OBJECTIVE = ("cmaes",)  # those that cannot rank trials by several objectives


def create_sampler(name: str, seed: int | None = None, multi_objective: bool = False) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of :data:`SAMPLERS` named ``name``.

    Example:
        >>> create_sampler("tpe", seed=0).__class__.__name__
        'TPESampler'
    """
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}'; choose from {', '.join(SAMPLERS)}")
    if multi_objective and name in SINGLE_OBJECTIVE:
        raise UserError(f"the {name} sampler handles one objective only; use nsga2 or tpe for several")
    return SAMPLERS[name](seed)
