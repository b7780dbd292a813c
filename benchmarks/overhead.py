"""Where a search's wall time goes: training steps vs. everything else.

Runs a search of a tiny model on digits (default 20 trials) and splits the
wall time of its trial slots (wall time x concurrent trials) into
training steps, evaluation + checkpointing (both measured inside the
trials), Ray start, and the rest (trial start-up, scheduling, storage writes,
idle slots).  Longer trials (``--epochs``) shrink the fixed costs' share.

    python benchmarks/overhead.py                   # 20 short trials
    python benchmarks/overhead.py --epochs 60       # trials of ~30 s on 2 CPU cores
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.search import run_search  # noqa: E402
from autocls.search.runner import _prepare_ray_connection  # noqa: E402
from autocls.search.space import parse_space  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--cpus", type=int, default=2, help="concurrent trials (1 CPU each)")
    args = parser.parse_args()

    import ray

    space = parse_space({
        "dataset": "digits", "asha": {"grace_period": 2, "reduction_factor": 3},
        "fixed": {"epochs": args.epochs, "batch_size": 64, "crop_padding": 1, "flip": False, "model": args.model},
        "params": {"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                   "lr": {"type": "float", "low": 1e-3, "high": 0.05, "log": True}},
    }, "overhead")
    start = time.perf_counter()
    _prepare_ray_connection(None)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_start = time.perf_counter() - start
    study = run_search("digits", space=space, n_trials=args.trials, studies_dir=tempfile.mkdtemp(), study_name="overhead",
                       show_progress=False)
    wall = time.perf_counter() - start
    trials = study.get_trials()
    train = sum(t.user_attrs.get("train_seconds", 0.0) for t in trials)
    evaluation = sum(t.user_attrs.get("eval_seconds", 0.0) for t in trials)
    slots = wall * args.cpus
    epochs = sum(t.user_attrs.get("epochs_run", 0) for t in trials)
    print(f"{len(trials)} trials of {args.model}, up to {args.epochs} epochs ({epochs} epochs run), "
          f"{args.cpus} at a time, wall {wall:.1f}s, mean trial {slots / len(trials):.1f} slot-seconds")
    print(f"training steps:          {train / slots:6.1%} of trial-slot time")
    print(f"evaluation + checkpoint: {evaluation / slots:6.1%}")
    print(f"Ray start:               {ray_start * args.cpus / slots:6.1%}")
    in_trials = sum(t.user_attrs.get("trial_seconds", 0.0) for t in trials)  # trial function start -> last report
    per_trial = in_trials - train - evaluation  # data load, model build, test probabilities
    between = slots - in_trials - ray_start * args.cpus  # trial start-up, scheduling, storage writes, idle tail
    print(f"inside trials, besides:  {per_trial / slots:6.1%}   (data load, model build, final test probabilities)")
    print(f"between trials:          {between / slots:6.1%}   (trial start-up, scheduling, storage, the idle tail "
          f"when fewer trials than slots remain)")
    print(f"outside training steps:  {1 - train / slots:6.1%}")



if __name__ == "__main__":
    main()
