"""The function each Ray Tune trial runs, in its own worker process."""
from __future__ import annotations

import time
import traceback

import torch

_DATA: dict[tuple, object] = {}  # one dataset per worker process: Ray reuses workers across trials


def _cached_data(cfg, runtime, store, split_key: str):
    from autocls.data import prepare_data

    key = (runtime.dataset, runtime.data_dir, cfg.val_fraction, store.uri, split_key, cfg.image_size)
    if key not in _DATA:
        _DATA.clear()  # hold one dataset at a time
        with store.fetched(split_key) as split_file:  # written by the driver before any trial starts
            if split_file is None:
                raise FileNotFoundError(f"the study's split file '{split_key}' is not in {store.uri}")
            # at the trials' image_size: 32-px trials of 256-px photos held 64x the pixels they train on
            _DATA[key] = prepare_data(runtime.dataset, runtime.data_dir, cfg.val_fraction, split_file=split_file,
                                      image_size=cfg.image_size)
    return _DATA[key]


def run_trial(config: dict) -> None:
    """Train one sampled config and stream its metrics to Ray Tune.

    A trial resumes from its folder's last checkpoint in the study's artifact
    store, so a trial that Ray retries (``--max-failures``, on any node) or
    that the next session re-runs continues where it stopped.  It ends by the search's ``deadline``, keeping its best
    epoch; a trial sized by the budget re-fits its epochs to ``fit_until`` from its first epoch.  An exception
    from training (a bad combination, CUDA out of memory) is written to the trial's folder, where the searcher
    reads the reason it records with the FAIL, and re-raised so that Ray can retry the trial.
    """
    from ray import tune

    from autocls.artifacts import ArtifactStore
    from autocls.search.cores import CoreHandOver
    from autocls.training import Runtime, TrainConfig, train

    started_at = time.time()  # with the report times, the trial's span on the search's timeline
    deadline = config.get("deadline")
    if deadline is not None and started_at >= deadline - 1:
        tune.report({"status": "no_time", "val_acc": 0.0, "val_balanced_acc": 0.0})  # started after the budget was spent: nothing to train
        return
    torch.set_num_threads(config.get("threads", 1))
    store = ArtifactStore(config["artifacts"])
    try:
        cfg, runtime = TrainConfig.from_dict(config["train"]), Runtime.from_dict(config["runtime"])
        data = _cached_data(cfg, runtime, store, config["split_key"])
        waited = 0.0

        def report(metrics: dict) -> None:
            # tune.report blocks until the driver has taken the result and asks for
            # the next; the time blocked so far goes out with each report.
            nonlocal waited
            sent = time.time()
            tune.report({"status": "ok", "started_at": started_at, "reported_at": sent, "report_wait": waited,
                         **metrics})
            waited += time.time() - sent
            threads = CoreHandOver.threads_for(config.get("cores_file"))
            if threads:  # the driver gives this trial the cores of finished ones
                torch.set_num_threads(threads)

        train(cfg, data, reporter=report, out_dir=config["trial_key"], store=store, resume=True,
              identity=config["identity"], deadline=deadline, runtime=runtime, fit_until=config.get("fit_until"),
              max_epochs=config.get("max_epochs"), metric=config.get("metric", "accuracy"),
              closing_passes=config.get("closing_passes", 1))
    except Exception as exc:
        store.trial(config["trial_key"]).save_error(f"{type(exc).__name__}: {exc}"[:500] + "\n\n" + traceback.format_exc())
        raise
