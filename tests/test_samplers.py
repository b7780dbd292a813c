import optuna
import pytest

from autocls.errors import UserError
from autocls.search.samplers import SAMPLERS, SINGLE_OBJECTIVE, create_sampler


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    return x * x + (0.5 if trial.suggest_categorical("model", ["a", "b"]) == "b" else 0.0)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_name_builds_a_sampler_that_runs_a_study_the_same_way_from_its_seed(name):
    """A name in `--sampler`'s choices is never accepted and then fails: each builds, proposes in a mixed space,
    and its seed decides its proposals."""
    studies = []
    for _ in range(2):
        study = optuna.create_study(sampler=create_sampler(name, seed=3), direction="minimize")
        study.optimize(objective, n_trials=8)
        studies.append(study)
    assert name.replace("nsga2", "nsgaii") in type(studies[0].sampler).__name__.lower()
    assert [t.params for t in studies[0].trials] == [t.params for t in studies[1].trials]
    assert len({t.params["x"] for t in studies[0].trials}) == 8


def test_a_sampler_of_one_objective_is_refused_for_several_and_an_unknown_name_is_named():
    for name in SAMPLERS:
        if name in SINGLE_OBJECTIVE:
            with pytest.raises(UserError, match=f"the {name} sampler handles one objective only"):
                create_sampler(name, multi_objective=True)
        else:
            optuna.create_study(sampler=create_sampler(name, seed=0, multi_objective=True),
                                directions=["minimize", "minimize"]).optimize(
                lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=3)
    with pytest.raises(UserError, match="unknown sampler 'bayes'; choose from tpe, random, cmaes, gp, nsga2"):
        create_sampler("bayes")
