"""ASHA that lets a space's seed recipes run to their end.

A space's ``seeds`` are its known-good recipes, chosen to differ, for the
ensemble.  ASHA stops a trial whose value at a rung falls below the best
``1/reduction_factor`` of the values recorded there before it; when a budget
fits two or three full-length trials, that is the one or two before it, and
early in a one-cycle schedule two good recipes differ by noise: a 20-minute
CPU search stopped airbench94's second seed at epoch 1 (33.8% against the
first seed's 35.2%) and, with the first rung at epoch 3, again (63.0% against
65.8%), both times for a drawn trial that ended below the seeds; run to its
end, it ended above the first (val 88.52% against 88.36%; benchmarks/RESULTS.md,
2026-12-01).  So seeds are never stopped early; their
values are still recorded at the rungs, where they set the cutoffs the
sampler's trials must pass.
"""
from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

SEED_RECIPE = "seed_recipe"  # the Optuna user attr, and the Ray trial's config key, that mark a seed


class SeedKeepingASHA(ASHAScheduler):
    """:class:`ray.tune.schedulers.ASHAScheduler` that never stops a trial whose config has ``seed_recipe``.

    Example:
        >>> scheduler = SeedKeepingASHA(time_attr="epoch", max_t=24, grace_period=1, reduction_factor=3)
        >>> config = tune.TuneConfig(scheduler=scheduler, metric="val_acc", mode="max")  # doctest: +SKIP
    """

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)  # records the value at its rung
        return TrialScheduler.CONTINUE if trial.config.get(SEED_RECIPE) else action
