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
