"""Optuna samplers by name."""
from __future__ import annotations

import optuna

from autocls.errors import UserError

SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")


def create_sampler(name: str, seed: int | None = None, multi_objective: bool = False) -> optuna.samplers.BaseSampler:
    """Build an Optuna sampler.

    TPE is multivariate with ``group=True`` (conditional spaces split into
    groups rather than being flattened) and a constant liar, so trials that run
    in parallel are not proposed on top of each other.

    Example:
        >>> create_sampler("tpe", seed=0).__class__.__name__
        'TPESampler'
    """
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=5)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        if multi_objective:
            raise UserError("the cmaes sampler handles one objective only; use nsga2 or tpe for several")
        # CMA-ES models only numeric params; categoricals go to the independent sampler.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise UserError(f"unknown sampler '{name}'; choose from {', '.join(SAMPLERS)}")
