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
* on one machine, hands the cores of idle slots to the trials still running
  once no trial is left to start.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from autocls.artifacts import TrialArtifacts
from autocls.search.budget import BudgetPlan
from autocls.search.space import SearchSpace
from autocls.search.trainable import THREADS_FILE


# Each objective is read from the trial's last result, and there describes the
# saved best epoch (speed: the trial's own threads, see trainer._speed).
OBJECTIVE_KEYS = {"val_acc": "best_val_acc", "val_loss": "best_val_loss", "num_params": "num_params",
                  "images_per_s": "speed_images_per_s", "epoch_time": "speed_epoch_time"}


class OptunaSearcher(Searcher):
    """Propose Ray Tune trials from an Optuna study and tell it how they ended.

    Example:
        >>> searcher = OptunaSearcher(study, space, trial_root=Path("studies/digits/trials"),
        ...                           extra_config={"split_file": "studies/digits/split.npz"})
        >>> tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, ...))
    """

    def __init__(self, study: optuna.Study, space: SearchSpace, trial_root: Path, extra_config: dict,
                 overrides: dict | None = None, rerun: list[optuna.trial.FrozenTrial] | None = None,
                 deadline: float | None = None, on_change: Callable[[], None] | None = None,
                 budget: int | None = None, cpu_pool: float | None = None, trial_deadline: float | None = None,
                 on_epoch: Callable[[int, int, int, float], None] | None = None, plan: BudgetPlan | None = None):
        super().__init__(metric=None, mode=None)
        self.study, self.space = study, space
        self.study_uid = study.user_attrs["uid"]
        # `deadline`: no trial starts after it; `trial_deadline`: running trials end by it
        self.trial_deadline = trial_deadline
        self.plan = plan
        self.out_of_time = False  # the budget plan says no further trial can reach its first rung
        self.trial_root = Path(trial_root)
        self.extra_config, self.overrides = extra_config, overrides or {}
        self.rerun = list(rerun or [])
        self.deadline = deadline
        self.on_change = on_change or (lambda: None)
        self.on_epoch = on_epoch or (lambda number, epoch, epochs, val_acc: None)
        self.live: dict[str, optuna.Trial] = {}
        self.epochs: dict[str, int] = {}
        self.reported: dict[str, set[int]] = {}
        self.curves: dict[str, dict[int, float]] = {}
        self.stats: dict[str, dict] = {}
        # Once `budget` trials are started, the cores of slots that fall idle go to the
        # trials still running (a thread count they read after each report): on a
        # laptop the last long trial otherwise crawls on one core while the others idle.
        # `cpu_pool` is the CPUs to share (a local Ray only; None: off).
        self.budget, self.cpu_pool = budget, cpu_pool
        self.started = 0
        self.trial_dirs: dict[str, Path] = {}

    # --- Ray Tune's Searcher interface ---------------------------------------------------

    def suggest(self, trial_id: str) -> dict | None:
        if self.deadline is not None and time.time() >= self.deadline:
            return Searcher.FINISHED
        if self.plan is not None and self.started and self._seconds_left() < self.plan.shortest_rung():
            # not even the fastest config would reach its first rung: nothing more starts, so
            # the cores of idle slots can go to the running trials now, not at the deadline
            self.out_of_time = True
            self._share_idle_cpus()
            return Searcher.FINISHED
        if self.rerun:  # interrupted in an earlier session: same number, same params
            frozen = self.rerun.pop(0)
            trial = optuna.Trial(self.study, frozen._trial_id)
            values = self.space.values_from_params(frozen.params)
            self.curves[trial_id] = {int(k): v for k, v in frozen.user_attrs.get("curve", {}).items()}
            self.reported[trial_id] = set(frozen.intermediate_values) | set(self.curves[trial_id])
        else:
            asked = self._ask()
            if asked is None:
                return Searcher.FINISHED
            trial, values = asked
            self.reported[trial_id], self.curves[trial_id] = set(), {}
        fitted = self.plan.epochs_for(values, self._seconds_left()) if self.plan is not None else None
        if fitted is not None:
            values["epochs"] = max(1, fitted)  # what fits the budget (budget.BudgetPlan)
        values.update(self.overrides)
        # each trial its own seed: two trials of one config are two draws, not clones
        values["seed"] = (int(values.get("seed", 0)) + trial.number) % 2**32
        # the study's uid in the folder name: a new study of the same name (another
        # storage, or the database deleted) never meets this one's files
        trial_dir = self.trial_root / f"{trial.number:05d}-{self.study_uid}"
        (trial_dir / THREADS_FILE).unlink(missing_ok=True)  # an earlier session's
        trial.set_user_attr("ray_trial_id", trial_id)
        trial.set_user_attr("trial_dir", str(trial_dir))
        self.live[trial_id] = trial
        self.trial_dirs[trial_id] = trial_dir
        self.started += 1
        self.epochs[trial_id] = int(values.get("epochs", self.space.max_epochs))
        self._share_idle_cpus()  # the budget's last trial may start with a slot already idle
        self.on_change()
        return {"train": values, "trial_dir": str(trial_dir), "number": trial.number,
                "identity": {"study": self.study_uid, "trial": trial.number}, "deadline": self.trial_deadline,
                **self.extra_config}

    def _seconds_left(self) -> float:
        return self.trial_deadline - time.time() if self.trial_deadline is not None else float("inf")

    def _ask(self, tries: int = 20) -> tuple[optuna.Trial, dict] | None:
        """A new trial that can finish an epoch before the deadline, or None.

        A proposal that cannot (a slow width near the end), and a seed enqueued
        in an earlier session with a model the budget left out, are PRUNED with
        the reason: the sampler learns from them, and nothing runs in vain.
        """
        for _ in range(tries):
            trial = self.study.ask()
            try:
                values = self.space.sample(trial)
            except ValueError as exc:  # Optuna: an enqueued value outside the narrowed choices
                self._tell(trial, TrialState.PRUNED, reason=f"skipped by the budget: {exc}")
                continue
            # the session's first trial always runs: a model cut short beats no model
            if self.plan is None or not self.started or self.plan.epochs_for(values, self._seconds_left()) != 0:
                return trial, values
            self._tell(trial, TrialState.PRUNED, reason="not started: its first rung would not end before the deadline")
        return None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.live:
            self._record(trial_id, self.live[trial_id], result)
            if "epoch" in result:
                self.on_epoch(self.live[trial_id].number, int(result["epoch"]), self.epochs[trial_id],
                              float(result.get("best_val_acc", 0.0)))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.live.pop(trial_id, None)
        if trial is None:
            return
        if result:
            self._record(trial_id, trial, result)  # the result that made ASHA stop is not sent to on_trial_result
        self._write_stats(trial_id, trial)
        epochs = self.epochs.pop(trial_id)
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
        elif result.get("epoch", 0) >= epochs:
            self._tell(trial, TrialState.COMPLETE, values=[result[OBJECTIVE_KEYS[o]] for o in self.space.objectives])
        elif result.get("done"):
            self._tell(trial, TrialState.PRUNED, reason=f"stopped by ASHA after epoch {result.get('epoch')}")
        # else: stopped from outside mid-run (Ctrl-C, time limit): left RUNNING for the next session
        self.reported.pop(trial_id, None)
        self.curves.pop(trial_id, None)
        self.trial_dirs.pop(trial_id, None)
        self._share_idle_cpus()
        self.on_change()

    def _share_idle_cpus(self) -> None:
        no_more = (self.budget is not None and self.started >= self.budget) or self.out_of_time or (
            self.deadline is not None and time.time() >= self.deadline)
        if not (self.cpu_pool and self.live and no_more):
            return
        threads = max(int(self.extra_config.get("threads", 1)), int(self.cpu_pool // len(self.live)))
        for trial_dir in self.trial_dirs.values():
            trial_dir.mkdir(parents=True, exist_ok=True)
            tmp = trial_dir / (THREADS_FILE + ".tmp")
            tmp.write_text(str(threads))
            tmp.replace(trial_dir / THREADS_FILE)

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

    def _record(self, trial_id: str, trial: optuna.Trial, result: dict) -> None:
        step, value = result.get("epoch"), result.get("val_acc")
        if step is None or value is None or step in self.reported[trial_id]:
            return
        step, value = int(step), float(value)
        if not math.isfinite(value):
            value = 0.0
        self.reported[trial_id].add(step)
        if self.space.multi_objective:  # Optuna keeps intermediate values for one objective only
            self.curves[trial_id][step] = value
        else:
            trial.report(value, step)  # the one storage write per epoch: the dashboard's live curve
        # The rest is kept here and written once, when the trial ends: every
        # attribute is its own SQLite transaction, and per-epoch writes of six
        # of them cost more than a small model's epoch.
        stats = self.stats.setdefault(trial_id, {"train_seconds": 0.0, "train_core_seconds": 0.0, "eval_seconds": 0.0})
        stats["train_seconds"] += float(result.get("epoch_time", 0.0))  # training steps only
        # with cores handed over at the end of a search, one trial's second is several cores'
        stats["train_core_seconds"] += float(result.get("epoch_time", 0.0)) * int(result.get("threads", 1))
        stats["eval_seconds"] += float(result.get("eval_time", 0.0))  # evaluation + checkpoint
        stats["epochs_run"] = step
        if "started_at" in result:  # the worker's clock: where the trial sits on the search's timeline
            stats.setdefault("started_at", float(result["started_at"]))
            stats["reported_at"] = float(result["reported_at"])
            stats["report_wait_seconds"] = float(result["report_wait"])  # up to this report
        for key in ("images_per_s", "num_params", "best_val_acc", "threads"):
            if key in result:
                stats[key] = result[key]

    def _error_reason(self, trial: optuna.Trial) -> str:
        error = TrialArtifacts(trial.user_attrs.get("trial_dir", "")).load_error()
        return error.split("\n\n")[0] if error else "the trial's worker process died (see the Ray logs)"

    def _write_stats(self, trial_id: str, trial: optuna.Trial) -> None:
        stats = self.stats.pop(trial_id, {})
        if self.curves.get(trial_id):
            stats["curve"] = {str(k): v for k, v in sorted(self.curves[trial_id].items())}
        for key, value in stats.items():
            trial.set_user_attr(key, value)

    def _tell(self, trial: optuna.Trial, state: TrialState, values=None, reason: str | None = None) -> None:
        if reason:
            trial.set_user_attr("reason", reason)
        if state == TrialState.PRUNED and self.space.multi_objective:
            state_values = None
        else:
            state_values = values
        self.study.tell(trial, state=state, values=state_values)
