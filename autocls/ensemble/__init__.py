"""Voting ensembles of a study's best trials: build, save, load, predict."""
from autocls.ensemble.build import METHODS, EnsembleResult, build_ensemble, candidates, run_with_best_tta
from autocls.ensemble.predict import LoadedEnsemble, folder_scores, load_ensemble, predict_files
from autocls.ensemble.voting import fit_temperature, greedy_or_even, greedy_selection, hard_vote, soft_vote

__all__ = ["METHODS", "EnsembleResult", "LoadedEnsemble", "build_ensemble", "fit_temperature", "folder_scores",
           "greedy_or_even", "greedy_selection", "hard_vote", "load_ensemble", "predict_files", "run_with_best_tta",
           "soft_vote", "candidates"]
