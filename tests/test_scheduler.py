"""ASHA keeps a space's seed recipes to their end and still stops the sampler's trials."""
import textwrap
from types import SimpleNamespace

from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from autocls.search.scheduler import SEED_RECIPE, SeedKeepingASHA


def test_a_seed_below_the_cutoff_continues_and_sets_the_cutoff_for_others():
    scheduler = SeedKeepingASHA(time_attr="epoch", metric="val_acc", mode="max", max_t=24, grace_period=1,
                                reduction_factor=3)
    first, seed, drawn = (SimpleNamespace(trial_id=name, config={SEED_RECIPE: name == "seed"})
                          for name in ("first", "seed", "drawn"))
    for trial in (first, seed, drawn):
        scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, first, {"epoch": 1, "val_acc": 0.352}) == TrialScheduler.CONTINUE
    # below the first trial's value at the rung: a drawn trial would stop here (see the last line)
    assert scheduler.on_trial_result(None, seed, {"epoch": 1, "val_acc": 0.338}) == TrialScheduler.CONTINUE
    # the seed's value was recorded: the cutoff is now two-thirds of the way from 33.8% to 35.2%, 34.7%
    assert scheduler.on_trial_result(None, drawn, {"epoch": 1, "val_acc": 0.348}) == TrialScheduler.CONTINUE
    late = SimpleNamespace(trial_id="late", config={})
    scheduler.on_trial_add(None, late)
    assert scheduler.on_trial_result(None, late, {"epoch": 1, "val_acc": 0.30}) == TrialScheduler.STOP


def test_a_trial_below_the_cutoff_runs_on_where_its_slot_would_stay_idle():
    """Regression: a 2-minute continuation of a CIFAR-10 search stopped a 2-epoch trial after its first epoch with
    48 s left, in which no trial could start: its second epoch was lost to nothing."""
    idle = [False]
    scheduler = SeedKeepingASHA(time_attr="epoch", metric="val_acc", mode="max", max_t=24, grace_period=1,
                                reduction_factor=3, stop_would_idle=lambda: idle[0])
    first, early, late = (SimpleNamespace(trial_id=name, config={}) for name in ("first", "early", "late"))
    for trial in (first, early, late):
        scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, first, {"epoch": 1, "val_acc": 0.6255}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, early, {"epoch": 1, "val_acc": 0.597}) == TrialScheduler.STOP
    idle[0] = True  # no further trial can start in the time left
    assert scheduler.on_trial_result(None, late, {"epoch": 1, "val_acc": 0.597}) == TrialScheduler.CONTINUE


def test_a_search_runs_its_seed_recipes_to_the_end_though_one_starts_slower(tmp_path):
    """Regression: ASHA stopped a space's second seed recipe at epoch 1, against the first seed's value there."""
    from autocls.search import run_search

    (tmp_path / "space.yaml").write_text(textwrap.dedent("""
        dataset: digits
        asha: {grace_period: 1, reduction_factor: 3}
        fixed: {epochs: 3, batch_size: 64, crop_padding: 1, flip: false, optimizer: adam, model: lenet}
        params:
          lr: {type: float, low: 1.0e-5, high: 3.0e-3, log: true}
        seeds: [{lr: 0.003}, {lr: 1.0e-5}]
    """))
    study = run_search("digits", space=tmp_path / "space.yaml", n_trials=2, study_name="s", studies_dir=tmp_path,
                       ensemble_top=None, show_progress=False, max_concurrent=1)
    first, slow = study.trials
    assert slow.intermediate_values[1] < first.intermediate_values[1]  # where ASHA stopped it before
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE], [
        t.user_attrs.get("reason") for t in study.trials]
    assert all(t.user_attrs[SEED_RECIPE] for t in study.trials)
    # the same two recipes, not as seeds (a new session's rungs start empty): the slower one is stopped
    study.enqueue_trial({"lr": 0.003})
    study.enqueue_trial({"lr": 1.0e-5})
    study = run_search("digits", space=tmp_path / "space.yaml", n_trials=4, study_name="s", studies_dir=tmp_path,
                       ensemble_top=None, show_progress=False, max_concurrent=1)
    assert study.trials[2].state == TrialState.COMPLETE and not study.trials[3].user_attrs.get(SEED_RECIPE)
    assert study.trials[3].state == TrialState.PRUNED
    assert "stopped by ASHA after epoch 1" in study.trials[3].user_attrs["reason"]
