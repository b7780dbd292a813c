"""The function each Ray Tune trial runs, in its own worker process."""
from __future__ import annotations

import traceback

import torch


def run_trial(config: dict) -> None:
    """Train one sampled config and stream its metrics to Ray Tune.

    Any exception from training (a bad combination, CUDA out of memory) is
    reported as a final result with ``status: failed`` and its reason, so the
    searcher can mark the trial FAIL with that reason and the search goes on.
    """
    from ray import tune

    from autocls.data import prepare_data
    from autocls.training import TrainConfig, train

    torch.set_num_threads(config.get("threads", 1))
    last = {"epoch": 0, "best_val_acc": 0.0}

    def report(metrics: dict) -> None:
        last.update(epoch=metrics["epoch"], best_val_acc=metrics.get("best_val_acc", last["best_val_acc"]))
        tune.report({"status": "ok", **metrics})

    try:
        cfg = TrainConfig.from_dict(config["train"])
        data = prepare_data(cfg.dataset, cfg.data_dir, cfg.val_fraction, split_file=config["split_file"])
        train(cfg, data, reporter=report, out_dir=config["trial_dir"])
    except Exception as exc:  # noqa: BLE001 - every training error becomes a FAIL with its reason
        reason = f"{type(exc).__name__}: {exc}"[:500]
        tune.report({"status": "failed", "reason": reason, "epoch": last["epoch"] + 1, "val_acc": 0.0,
                     "best_val_acc": last["best_val_acc"], "traceback": traceback.format_exc()[-2000:]})
