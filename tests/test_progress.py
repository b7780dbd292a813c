"""The search's progress line (autocls.search.progress)."""
from types import SimpleNamespace

import optuna

from autocls.search.progress import SearchProgress


def test_an_epoch_of_a_running_trial_moves_the_best_val_shown_at_once(capsys):
    """Regression: a 5-minute search's log read 'epochs #0:1/3 | best val top-1 -' for two minutes after that
    epoch reported 54% (the best was only read back from the study when a trial ended)."""
    study = optuna.create_study(direction="maximize")
    study.ask()  # a running trial
    with SearchProgress(study, n_trials=None, time_budget_s=300) as progress:
        progress.epoch_done(0, 1, 3, 0.5412)
        first = capsys.readouterr().err.strip().splitlines()[-1]
        progress.epoch_done(0, 2, 3, 0.7400)
        second = capsys.readouterr().err.strip().splitlines()[-1]
    assert "epochs #0:1/3" in first and "best val top-1 54.12%" in first, first
    # a time budget and no trial count: the count alone, not "0/∞" (a search that would never end)
    assert "finished 0 | running 1" in first and "∞" not in first, first
    assert "epochs #0:2/3" in second and "best val top-1 74.00%" in second, second


def test_the_closing_leaderboard_leaves_out_queued_trials_and_says_the_same_command_runs_them(capsys):
    """Regression: a 5-minute search's closing table ended in an empty row 'WAITING' (a seed recipe the budget
    left no time for), which read as a trial that hung."""
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0.25})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # the queued one starts first
    study.tell(trial, 0.9)
    study.enqueue_trial({"x": 0.75})  # never started
    progress = SearchProgress(study, n_trials=None, time_budget_s=300)
    progress.final()
    captured = capsys.readouterr()
    assert "WAITING" not in captured.out and "COMPLETE" in captured.out
    assert "1 queued trial not started" in captured.err and "the same command runs it first" in captured.err
    # what that line promises: the next ask (a resumed search's) takes the queued trial
    assert study.ask().number == 1  # trial #1 was the queued one


def test_a_running_trial_shows_its_time_left_from_its_epochs_timing(capsys, monkeypatch):
    """Without a budget the search's ETA stays '?' until a trial finishes (half an hour a trial on a CPU): the
    line showed 'epochs #0:1/24' and nothing of how long that trial had to go."""
    study = optuna.create_study(direction="maximize")
    study.ask()
    study.ask()
    clock = [1000.0]
    # the progress module's clock alone: patching time.time itself would stop the clock of every thread (rich's
    # refresh, pytest's timing) for the test's length
    from autocls.search import progress as progress_module

    monkeypatch.setattr(progress_module, "time", SimpleNamespace(time=lambda: clock[0]))
    with SearchProgress(study, n_trials=20, time_budget_s=None) as progress:
        progress.epoch_done(0, 1, 24, 0.41, epoch_s=75.0)
        progress.epoch_done(1, 2, 3, 0.52, epoch_s=30.0)
        first = capsys.readouterr().err.strip().splitlines()[-1]
        clock[0] += 20  # the time left counts down between epochs
        progress.refresh()
        later = capsys.readouterr().err.strip().splitlines()[-1]
        progress.epoch_done(1, 3, 3, 0.55, epoch_s=30.0)  # its last epoch: nothing left to count
        last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "epochs #0:1/24 29m left, #1:2/3 30s left" in first and "ETA ?" in first, first
    assert "finished 0/20 |" in first, first
    assert "#0:1/24 28m left, #1:2/3 10s left" in later, later
    assert "#1:3/3 |" in last, last
