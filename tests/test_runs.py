"""Where `autocls train` keeps its runs (autocls.training.runs); the command's own behaviour is in test_cli.py."""
import dataclasses

from autocls.artifacts import TrialArtifacts
from autocls.training import Runtime, TrainConfig
from autocls.training.runs import budget_width, run_folder, run_folders
from autocls.training.trainer import run_identity


def test_a_run_folder_is_the_one_holding_that_run_else_the_first_free_one(tmp_path):
    base = tmp_path / "runs" / "digits-lenet"
    first, second = {"config": "a"}, {"config": "b"}
    assert run_folder(base, first) == base and [f for f, _ in run_folders(base)] == [base]  # nothing made
    TrialArtifacts(base, identity=first).claim()
    assert run_folder(base, first) == base
    assert run_folder(base, second) == tmp_path / "runs" / "digits-lenet-2"
    TrialArtifacts(tmp_path / "runs" / "digits-lenet-2", identity=second).claim()
    assert run_folder(base, second) == tmp_path / "runs" / "digits-lenet-2"
    assert run_folder(base, {"config": "c"}) == tmp_path / "runs" / "digits-lenet-3"
    assert [owner for _, owner in run_folders(base)] == [first, second, None]


def test_a_budgets_width_is_the_width_of_the_run_already_there_without_timing_it(tmp_path, monkeypatch):
    """The same command continues its run at the width it was fitted to, whatever a new timing would say."""
    import autocls.search.budget as budget

    def untimed(*args, **kwargs):
        raise AssertionError("timed a width although the run is in its folder")

    monkeypatch.setattr(budget, "train_width", untimed)
    cfg, runtime = TrainConfig(model="resnet9", epochs=3), Runtime(dataset="digits", device="cpu")
    identity = {"dataset": "digits", "width": "fitted to the budget"}
    TrialArtifacts(tmp_path / "run", identity=run_identity(dataclasses.replace(cfg, width=0.375), runtime,
                                                           identity)).claim()
    fitted, fitted_identity, note = budget_width(cfg, runtime, None, tmp_path / "run", {"dataset": "digits"},
                                                 until=0.0, width_given=False, threads=1)
    assert (fitted.width, fitted_identity, note) == (0.375, identity, None)
    # a model without a width multiplier is as it was
    timm_model = TrainConfig(model="timm/resnet18")
    assert budget_width(timm_model, runtime, None, tmp_path / "run", {}, until=0.0, width_given=False,
                        threads=1) == (timm_model, {}, None)
