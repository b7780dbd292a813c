"""The search's progress line (autocls.search.progress)."""
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
