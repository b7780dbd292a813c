"""Where a search's wall time goes: training steps vs. everything else.

Runs a search of a tiny model on digits (default 20 trials) and splits the
wall time of its trial slots (wall time x concurrent trials) on one
timeline: training steps and evaluation (measured inside the trials), the
rest of each trial function, and the slot time when no trial function runs
(Ray start, search start, gaps between trials, the tail, the end).  Longer
trials (``--epochs``) shrink the fixed costs' share.

    python benchmarks/overhead.py                   # 20 short trials
    python benchmarks/overhead.py --model resnet9 --epochs 60   # trials of ~50 s on 2 CPU cores
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.search import run_search  # noqa: E402
from autocls.search.runner import _prepare_ray_environment  # noqa: E402
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
    start = time.time()  # wall clock: the trials' timestamps are on it
    _prepare_ray_environment(None)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_ready = time.time()
    study = run_search("digits", space=space, n_trials=args.trials, studies_dir=tempfile.mkdtemp(), study_name="overhead",
                       show_progress=False)
    end = time.time()
    trials = study.get_trials()
    slots, wall = args.cpus, end - start
    total = wall * slots
    attr = lambda key: [t.user_attrs.get(key, 0.0) for t in trials]  # noqa: E731
    train, evaluation = sum(attr("train_core_seconds")), sum(attr("eval_seconds"))
    handed = train - sum(attr("train_seconds"))  # core-seconds of idle slots given to running trials (the tail)
    spans = sorted(zip(attr("started_at"), attr("reported_at")))  # trial function start -> its last report
    span = sum(b - a for a, b in spans)
    inside = span + handed  # core-seconds inside trial functions
    first_start, last_start, last_end = spans[0][0], spans[-1][0], max(b for _, b in spans)

    def idle(t0: float, t1: float) -> float:
        """Slot-seconds in [t0, t1] with no trial function running."""
        busy = sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in spans)
        return slots * (t1 - t0) - busy

    rows = [
        ("training steps", train, f"(core-seconds: {handed / len(trials):.2f} s/trial on cores handed over at the end)"),
        ("evaluation", evaluation, "(validation pass + best-epoch weights)"),
        ("waiting on reports", sum(attr("report_wait_seconds")), "(tune.report blocks until the driver asks for more)"),
        ("inside trials, besides", inside - train - evaluation - sum(attr("report_wait_seconds")),
         "(data, model build, checkpoints, test probabilities)"),
        ("Ray start", slots * (ray_ready - start), ""),
        ("search start", idle(ray_ready, first_start), "(splits, Tuner, first workers, torch import)"),
        ("between trials", idle(first_start, last_start), "(one trial's end to the next's start in a slot)"),
        ("the tail", idle(last_start, last_end) - handed, "(slots idle once no trial is left to start)"),
        ("search end", slots * (end - last_end), "(last report to the driver's return)"),
    ]
    epochs = sum(attr("epochs_run"))
    print(f"{len(trials)} trials of {args.model}, up to {args.epochs} epochs ({epochs} epochs run), "
          f"{slots} at a time, wall {wall:.1f}s, mean trial {span / len(trials):.1f}s inside its function")
    for name, seconds, note in rows:
        print(f"{name + ':':25s}{seconds / total:6.1%}  {seconds / len(trials):6.2f} s/trial  {note}")
    print(f"{'(unaccounted):':25s}{1 - sum(r[1] for r in rows) / total:6.1%}")
    tail = rows[-2][1]
    print(f"outside training steps:  {1 - train / total:6.1%} of trial-slot time (wall x {slots})")
    print(f"  the same without the tail: {1 - train / (total - tail):6.1%}  (the tail is the budget's end, not a per-trial cost)")


if __name__ == "__main__":
    main()
