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

Nor, in a budgeted search, is any trial stopped where its slot would then stay idle to the budget's end:
ASHA stops a trial to start another in its place, and near the deadline none can start (a 2-minute
continuation of a CIFAR-10 search stopped a 2-epoch trial after its first epoch with 48 s left, in which no
trial could reach a first rung); run to its end, the trial is one more candidate for the closing ensemble,
whose greedy selection leaves it out unless it helps on val.
"""
from __future__ import annotations

from typing import Callable

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

SEED_RECIPE = "seed_recipe"  # the Optuna user attr, and the Ray trial's config key, that mark a seed


class SeedKeepingASHA(ASHAScheduler):
    """:class:`ray.tune.schedulers.ASHAScheduler` that never stops a trial whose config has ``seed_recipe``, nor
    any trial while ``stop_would_idle()`` says its slot would then stay idle
    (:meth:`autocls.search.searcher.OptunaSearcher.stop_would_idle`).

    Example:
        >>> scheduler = SeedKeepingASHA(time_attr="epoch", max_t=24, grace_period=1, reduction_factor=3)
        >>> config = tune.TuneConfig(scheduler=scheduler, metric="val_acc", mode="max")  # doctest: +SKIP
    """

    def __init__(self, *args, stop_would_idle: Callable[[], bool] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_would_idle = stop_would_idle or (lambda: False)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)  # records the value at its rung
        if action == TrialScheduler.STOP and (trial.config.get(SEED_RECIPE) or self.stop_would_idle()):
            return TrialScheduler.CONTINUE
        return action
