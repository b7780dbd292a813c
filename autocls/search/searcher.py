"""A Ray Tune searcher on Optuna's ask/tell API.

Written instead of Ray's stock ``OptunaSearch`` because that one tells Optuna
every trial stopped by ASHA as COMPLETE with its early value, reports no
learning curve and cannot continue a study's interrupted trials.  This one:

* reports every epoch's ``val_acc`` to the Optuna trial (the dashboard's curves);
* tells a trial that ASHA stopped as PRUNED, one that ran all its epochs as
  COMPLETE, one whose training raised or whose worker died as FAIL (the reason
  in user attrs), and one whose loss diverged as PRUNED with that reason;
* leaves a trial that was cut off by the driver stopping (Ctrl-C, kill -9) as
  RUNNING, and re-runs such trials first in the next session, under the same
  trial number, so the study neither loses nor duplicates a trial;
* says when no further trial will start, so that on one machine the cores of
  idle slots can go to the trials still running (:mod:`autocls.search.cores`).
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from autocls.artifacts import ArtifactStore
from autocls.search.budget import BudgetPlan, config_key
from autocls.search.cores import CoreHandOver
from autocls.search.scheduler import SEED_RECIPE
from autocls.search.space import SearchSpace


# Each objective is read from the trial's last result, and there describes the
# saved best epoch (speed: the trial's own threads, see trainer._speed).
OBJECTIVE_KEYS = {"val_acc": "best_val_acc", "val_balanced_acc": "best_val_balanced_acc", "val_loss": "best_val_loss",
                  "num_params": "num_params", "images_per_s": "speed_images_per_s", "epoch_time": "speed_epoch_time"}


class OptunaSearcher(Searcher):
    """Propose Ray Tune trials from an Optuna study and tell it how they ended.

    Example:
        >>> searcher = OptunaSearcher(study, space, store=ArtifactStore("studies/digits"),  # doctest: +SKIP
        ...                           extra_config={"split_key": "split.npz"})
        >>> tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, ...))  # doctest: +SKIP
    """

    def __init__(self, study: optuna.Study, space: SearchSpace, store: ArtifactStore, extra_config: dict,
                 runtime: dict | None = None, rerun: list[optuna.trial.FrozenTrial] | None = None,
                 deadline: float | None = None, on_change: Callable[[], None] | None = None,
                 budget: int | None = None, cores: CoreHandOver | None = None, trial_deadline: float | None = None,
                 on_epoch: Callable[[int, int, int, float, float | None], None] | None = None,
                 plan: BudgetPlan | None = None, data_size: tuple[int, int] | None = None):
        super().__init__(metric=None, mode=None)
        self.study, self.space, self.store = study, space, store
        self.study_uid = study.user_attrs["uid"]
        # `deadline`: no trial starts after it; `trial_deadline`: running trials end by it
        self.deadline, self.trial_deadline = deadline, trial_deadline
        self.plan = plan
        # (training images, image side): what a trial fits the fields its space does not set to
        # (SearchSpace.trial_config)
        self.data_size = data_size or (None, None)
        self.out_of_time = False  # the budget plan says no further trial can reach its first rung
        self.extra_config, self.runtime = extra_config, runtime or {}  # runtime: autocls.training.Runtime fields
        self.rerun = list(rerun or [])
        self.on_change = on_change or (lambda: None)
        self.on_epoch = on_epoch or (lambda number, epoch, epochs, val_acc, epoch_s: None)
        self.live: dict[str, _LiveTrial] = {}  # by Ray Tune trial id
        # Once `budget` trials have started (or the deadline or the plan allows no
        # more), `cores` hands the CPUs of idle slots to the running trials.
        self.budget, self.cores = budget, cores
        self.started = 0

    # --- Ray Tune's Searcher interface ---------------------------------------------------

    def suggest(self, trial_id: str) -> dict | None:
        if self.deadline is not None and time.time() >= self.deadline:
            return Searcher.FINISHED
        if self.started and self._no_first_rung_fits():
            # nothing more starts: the cores of idle slots can go to the running trials now, not at the deadline
            self.out_of_time = True
            self._share_idle_cores()
            return Searcher.FINISHED
        if self.rerun:  # interrupted in an earlier session: same number, same params
            frozen = self.rerun.pop(0)
            live = _LiveTrial(reopen_trial(self.study, frozen))
            values = self.space.values_from_params(frozen.params)
            live.curve = {int(k): v for k, v in frozen.user_attrs.get("curve", {}).items()}
            live.reported = set(frozen.intermediate_values) | set(live.curve)
        else:
            asked = self._ask()
            if asked is None:
                return Searcher.FINISHED
            live, values = _LiveTrial(asked[0]), asked[1]
        trial = live.trial
        fitted = self.plan.epochs_for(values, self._seconds_left()) if self.plan is not None else None
        sizing = {}
        if fitted is not None:
            values["epochs"] = max(1, fitted)  # what fits the budget (budget.BudgetPlan)
            # and the trial re-fits that from its first epoch's real time
            sizing = {"fit_until": self.plan.fit_until(values, self.trial_deadline), "max_epochs": self.space.max_epochs}
        # each trial its own seed: two trials of one config are two draws, not clones
        runtime = {**self.runtime, "seed": (int(self.runtime.get("seed", 0)) + trial.number) % 2**32}
        # the study's uid in the folder name: a new study of the same name (another
        # storage, or the database deleted) never meets this one's files
        key = f"trials/{trial.number:05d}-{self.study_uid}"
        trial.set_user_attr("ray_trial_id", trial_id)
        trial.set_user_attr("trial_key", key)
        live.epochs, live.values = int(values.get("epochs", self.space.max_epochs)), values
        live.proposed_at = time.time()
        self.live[trial_id] = live
        self.started += 1
        # the model's and the dataset's recipes (digits: no flips) under what the space sets; the rest fitted to
        # the data
        train = self.space.trial_config(values, runtime.get("dataset"), *self.data_size).to_dict()
        if self.plan is not None and train.get("flip"):  # the closing tries test-time augmentation: trained flips
            sizing["closing_passes"] = self.plan.closing_passes(values, sizing.get("fit_until"), self.trial_deadline)
        config = {"train": train, "runtime": runtime, "trial_key": key, "number": trial.number,
                  "identity": {"study": self.study_uid, "trial": trial.number}, "deadline": self.trial_deadline,
                  SEED_RECIPE: bool(trial.user_attrs.get(SEED_RECIPE)), "metric": self.space.ranking_metric,
                  **sizing, **self.extra_config}
        if self.cores is not None:
            self.cores.reset(trial.number)
            config["cores_file"] = str(self.cores.file(trial.number))
        self._share_idle_cores()  # the budget's last trial may start with a slot already idle
        self.on_change()
        return config

    def _seconds_left(self) -> float:
        return self.trial_deadline - time.time() if self.trial_deadline is not None else float("inf")

    def _no_first_rung_fits(self) -> bool:
        """Not even the plan's fastest config would reach its first rung in the time left."""
        return self.plan is not None and self._seconds_left() < self.plan.shortest_rung()

    def _ask(self, tries: int = 20) -> tuple[optuna.Trial, dict] | None:
        """A new trial that can finish an epoch before the deadline, or None.

        Near the deadline the proposal's model and width are among those that
        still fit (:meth:`_propose_only_what_fits`).  A proposal that cannot start
        all the same (a seed, a float width), and a seed enqueued in an earlier
        session with a model the budget left out, are PRUNED with the reason.
        """
        for _ in range(tries):
            self._propose_only_what_fits()
            trial = self.study.ask()
            try:
                values = self.space.sample(trial)
            except ValueError as exc:  # Optuna: an enqueued value outside the narrowed choices
                self._tell(trial, TrialState.PRUNED, reason=f"skipped by the budget: {exc}")
                continue
            # the session's first sized trial always runs: a model cut short beats no model
            if self.plan is None or self.plan.epochs_for(values, self._seconds_left()) != 0 or \
                    (not self.started and config_key(values) in self.plan.epochs):
                return trial, values
            self._tell(trial, TrialState.PRUNED, reason="not started: its first rung would not end before the deadline")
        return None

    def _propose_only_what_fits(self) -> None:
        """Near the deadline, fix the next proposal's model and width to a pair whose first rung still fits.

        Left to the sampler, the proposals of pairs that cannot start were each told PRUNED (nine in
        the last two minutes of a 20-minute CPU search), and TPE counts a PRUNED trial without a
        curve among the worst of its model though it never trained.  Narrowing the choices instead
        is not possible: Optuna refuses a categorical whose choices change within a study.  The
        sampler still draws every other parameter.
        """
        if self.plan is None or self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return  # seeds first
        fitting = self.plan.fitting(self._seconds_left())
        if not fitting or len(fitting) == len(self.plan.epochs):
            return  # everything fits (the sampler chooses), or nothing does (no trial starts)
        pair = random.Random(len(self.study.trials)).choice(fitting)
        fixed = {name: value for name, value in pair.items() if (param := self.space.params.get(name)) is not None
                 and param.type == "categorical" and value in param.choices}
        if fixed:
            self.study.enqueue_trial(fixed)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        live = self.live.get(trial_id)
        if live is not None:
            live.record(result, self.space)
            epoch_s = result["epoch_time"] + result.get("eval_time", 0.0) if "epoch_time" in result else None
            measured = result.get("threads") == self.extra_config.get("threads") and result.get("full_epoch")
            if self.plan is not None and measured and epoch_s is not None:  # on the calibration's threads
                self.plan.observe(live.values, epoch_s)
            if self.plan is not None and epoch_s is not None and result.get("epoch") == 1 \
                    and not result.get("resumed_from_epoch"):  # (a checkpoint's epochs are reported again at once)
                # its start: the driver's clock from the proposal to this report, less the epoch it reports
                self.plan.observe_start(time.time() - live.proposed_at - epoch_s)
            if "epoch" in result:
                self.on_epoch(live.trial.number, int(result["epoch"]), live.epochs,
                              float(result.get(OBJECTIVE_KEYS[self.space.objectives[0]], 0.0)), epoch_s)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        live = self.live.pop(trial_id, None)
        if live is None:
            return
        trial = live.trial
        if result:
            live.record(result, self.space)  # the result that made ASHA stop is not sent to on_trial_result
        live.write_stats()
        status = (result or {}).get("status", "ok")
        if error:
            self._tell(trial, TrialState.FAIL, reason=self._error_reason(trial))
        elif not result:
            pass  # never started (the driver is stopping): stays RUNNING and is re-run next session
        elif status == "diverged":
            self._tell(trial, TrialState.PRUNED, reason=result.get("reason", "loss diverged"))
        elif status == "time_budget":
            self._tell(trial, TrialState.PRUNED, reason=result.get("reason", "time budget"))
        elif status == "no_time":
            self._tell(trial, TrialState.FAIL, reason="not started: the time budget was spent")
        elif result.get("epoch", 0) >= live.epochs:
            self._tell(trial, TrialState.COMPLETE, values=[result[OBJECTIVE_KEYS[o]] for o in self.space.objectives])
        elif result.get("done"):
            self._tell(trial, TrialState.PRUNED, reason=f"stopped by ASHA after epoch {result.get('epoch')}")
        # else: stopped from outside mid-run (Ctrl-C, time limit): left RUNNING for the next session
        self._share_idle_cores()
        self.on_change()

    @property
    def starts_no_more(self) -> bool:
        """True once no further trial will start in this session."""
        return (self.budget is not None and self.started >= self.budget) or self.out_of_time or (
            self.deadline is not None and time.time() >= self.deadline)

    def stop_would_idle(self) -> bool:
        """Whether a running trial stopped now would leave its slot idle to the budget's end: a time budget, in whose
        time left no further trial can start (nor reach a first rung), and no other running trial to take its cores.

        Without a time budget a trial stopped at the end of the search ends the search sooner; with one, the time
        is the user's to fill (:class:`~autocls.search.scheduler.SeedKeepingASHA` lets such a trial run on).
        """
        if self.trial_deadline is None:
            return False
        no_more = self.starts_no_more or self._no_first_rung_fits()
        takes_its_cores = self.cores is not None and len(self.live) > 1
        return no_more and not takes_its_cores

    def _share_idle_cores(self) -> None:
        if self.cores is not None and self.live and self.starts_no_more:
            self.cores.share([live.trial.number for live in self.live.values()])

    # --- persistence: the study is the state ------------------------------------------

    def save(self, checkpoint_path: str) -> None:
        # Everything a new session needs (history, interrupted trials) is in the
        # Optuna storage; Ray's copy would only be a second truth to disagree with.
        Path(checkpoint_path).write_text(json.dumps({"study": self.study.study_name if self.study else None}))

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self) -> dict:
        # Ray pickles its tune config (searcher included) into the experiment
        # folder; storages, live trials and the progress callback don't pickle.
        state = self.__dict__.copy()
        state.update(study=None, live={}, on_change=None, on_epoch=None)
        return state

    # --- helpers -------------------------------------------------------------------------

    def _error_reason(self, trial: optuna.Trial) -> str:
        error = self.store.trial(trial.user_attrs["trial_key"]).load_error()
        return error.split("\n\n")[0] if error else "the trial's worker process died (see the Ray logs)"

    def _tell(self, trial: optuna.Trial, state: TrialState, values=None, reason: str | None = None) -> None:
        if reason:
            trial.set_user_attr("reason", reason)
        if state == TrialState.PRUNED and self.space.multi_objective:
            state_values = None
        else:
            state_values = values
        self.study.tell(trial, state=state, values=state_values)


@dataclass
class _LiveTrial:
    """A running trial: its Optuna handle, planned epochs, reported curve and timing statistics."""

    trial: optuna.Trial
    epochs: int = 0
    values: dict = field(default_factory=dict)  # the TrainConfig values it runs
    proposed_at: float = 0.0  # when the searcher proposed it
    reported: set[int] = field(default_factory=set)
    curve: dict[int, float] = field(default_factory=dict)  # multi-objective studies: Optuna keeps no curve
    stats: dict = field(default_factory=lambda: {"train_seconds": 0.0, "train_core_seconds": 0.0, "eval_seconds": 0.0})

    def record(self, result: dict, space: SearchSpace) -> None:
        step, value = result.get("epoch"), result.get(space.objectives[0])  # what ASHA ranks by
        if "epochs" in result:  # re-fitted to the trial's time by the trainer
            self.epochs = int(result["epochs"])
        if result.get("resumed_from_epoch"):  # continued from a checkpoint (another node, another session)
            self.stats["resumed_from_epoch"] = int(result["resumed_from_epoch"])
        if step is None or value is None or step in self.reported:
            return
        step, value = int(step), float(value)
        if not math.isfinite(value):
            value = 0.0
        self.reported.add(step)
        if space.multi_objective:  # Optuna keeps intermediate values for one objective only
            self.curve[step] = value
        else:
            self.trial.report(value, step)  # the one storage write per epoch: the dashboard's live curve
        # The rest is kept here and written once, when the trial ends: every
        # attribute is its own SQLite transaction, and per-epoch writes of six
        # of them cost more than a small model's epoch.
        stats = self.stats
        stats["train_seconds"] += float(result.get("epoch_time", 0.0))  # training steps only
        # with cores handed over at the end of a search, one trial's second is several cores'
        stats["train_core_seconds"] += float(result.get("epoch_time", 0.0)) * int(result.get("threads", 1))
        stats["eval_seconds"] += float(result.get("eval_time", 0.0))  # evaluation + checkpoint
        stats["epochs_run"] = step
        if "started_at" in result:  # the worker's clock: where the trial sits on the search's timeline
            stats.setdefault("started_at", float(result["started_at"]))
            stats["reported_at"] = float(result["reported_at"])
            stats["report_wait_seconds"] = float(result["report_wait"])  # up to this report
        for key in ("images_per_s", "num_params", "best_val_acc", "best_val_balanced_acc", "threads"):
            if key in result:
                stats[key] = result[key]

    def write_stats(self) -> None:
        attrs = dict(self.stats) if "epochs_run" in self.stats or "resumed_from_epoch" in self.stats else {}
        if self.curve:
            attrs["curve"] = {str(k): v for k, v in sorted(self.curve.items())}
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)


def reopen_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.Trial:
    """A live handle on a trial left RUNNING by an interrupted session, to continue it under its number.

    Optuna has no public way to continue an unfinished trial: its answer is to
    fail it and enqueue a copy (``RetryFailedTrialCallback``), which would give
    the study a FAIL and a second number for one run (optuna/optuna#3351,
    optuna/optuna#6283).  The one private attribute read in autocls, kept here.
    """
    return optuna.Trial(study, frozen._trial_id)
