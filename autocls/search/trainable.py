"""The function each Ray Tune trial runs, in its own worker process."""
from __future__ import annotations

import time
import traceback

import torch

THREADS_FILE = "threads"  # written by the searcher when idle cores can go to this trial
_DATA: dict[tuple, object] = {}  # one dataset per worker process: Ray reuses workers across trials


def _cached_data(cfg, split_file: str):
    from autocls.data import prepare_data

    key = (cfg.dataset, cfg.data_dir, cfg.val_fraction, split_file)
    if key not in _DATA:
        _DATA.clear()  # hold one dataset at a time
        _DATA[key] = prepare_data(cfg.dataset, cfg.data_dir, cfg.val_fraction, split_file=split_file)
    return _DATA[key]


def run_trial(config: dict) -> None:
    """Train one sampled config and stream its metrics to Ray Tune.

    A trial resumes from its folder's last checkpoint, so a trial that Ray
    retries (``--max-failures``) or that the next session re-runs continues
    where it stopped.  It ends by the search's ``deadline``, keeping its best
    epoch.  An exception from training (a bad combination, CUDA out of memory)
    is written to the trial folder, where the searcher reads the reason it
    records with the FAIL, and re-raised so that Ray can retry the trial.
    """
    from ray import tune

    from autocls.artifacts import TrialArtifacts
    from autocls.training import TrainConfig, train

    started_at = time.time()  # with the report times, the trial's span on the search's timeline
    deadline = config.get("deadline")
    if deadline is not None and started_at >= deadline - 1:
        tune.report({"status": "no_time", "val_acc": 0.0})  # started after the budget was spent: nothing to train
        return
    torch.set_num_threads(config.get("threads", 1))
    artifacts = TrialArtifacts(config["trial_dir"])
    threads_file = artifacts.folder / THREADS_FILE
    try:
        cfg = TrainConfig.from_dict(config["train"])
        data = _cached_data(cfg, config["split_file"])
        waited = 0.0

        def report(metrics: dict) -> None:
            # tune.report blocks until the driver has taken the result and asks for
            # the next; the time blocked so far goes out with each report.
            nonlocal waited
            sent = time.time()
            tune.report({"status": "ok", "started_at": started_at, "reported_at": sent, "report_wait": waited,
                         **metrics})
            waited += time.time() - sent
            if threads_file.exists():  # the searcher gives this trial the cores of finished ones
                torch.set_num_threads(int(threads_file.read_text()))

        train(cfg, data, reporter=report, out_dir=artifacts.folder, resume=True, identity=config["identity"],
              deadline=deadline)
    except Exception as exc:
        artifacts.folder.mkdir(parents=True, exist_ok=True)
        artifacts.save_error(f"{type(exc).__name__}: {exc}"[:500] + "\n\n" + traceback.format_exc())
        raise
