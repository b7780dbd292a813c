"""TPE + ASHA vs. random search without pruning, at equal total training epochs, on real data.

Random search runs ``--random-trials`` full-length trials (no pruning).  TPE +
ASHA then runs, resuming its study in small steps, until it has spent the same
number of training epochs.  Printed: each method's best val accuracy, and how
many epochs each needed to reach the random search's best (the ratio is
random / TPE+ASHA; above 1 means TPE+ASHA got there with fewer epochs).

    python benchmarks/search_efficiency.py                    # digits, CPU, ~5 min
    python benchmarks/search_efficiency.py --dataset cifar10  # real CIFAR-10 JPEGs from ../shared (slow on CPU)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.search import SearchSpace, run_search  # noqa: E402
from autocls.search.space import parse_space  # noqa: E402
from _shared_data import cifar10_jpg_folder  # noqa: E402

def epochs_used(study) -> int:
    return sum(t.user_attrs.get("epochs_run", 0) for t in study.get_trials(deepcopy=False))


def curve(study):
    """(cumulative epochs, best val acc so far) in the order trials finished."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    done.sort(key=lambda t: t.datetime_complete)
    total, best, points = 0, 0.0, []
    for t in done:
        total += t.user_attrs.get("epochs_run", 0)
        if t.state == TrialState.COMPLETE:
            best = max(best, t.value)
        points.append((total, best))
    return points


def epochs_to_reach(points, target: float):
    return next((e for e, b in points if b >= target - 1e-9), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", choices=["digits", "cifar10"])
    parser.add_argument("--random-trials", type=int, default=16)
    parser.add_argument("--cifar-per-class", type=int, default=500, help="CIFAR-10 images per class to use")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="autocls-bench-"))
    if args.dataset == "digits":
        dataset, space = "digits", SearchSpace.load("digits")
    else:
        dataset = str(cifar10_jpg_folder(args.cifar_per_class, work))
        space = SearchSpace.load(Path(__file__).parent / "cifar10_cpu_space.yaml")
    # Random search without pruning: ASHA's only rung is the last epoch.
    no_prune = parse_space({**yaml.safe_load(space.source), "asha": {"grace_period": space.max_epochs, "reduction_factor": 2},
                            "seeds": []}, "random")
    budget = args.random_trials * space.max_epochs
    t0 = time.time()
    random_study = run_search(dataset, space=no_prune, n_trials=args.random_trials, sampler="random",
                              study_name="random", studies_dir=work, seed=args.seed, show_progress=False)
    t_random = time.time() - t0
    seedless = parse_space({**yaml.safe_load(space.source), "seeds": []}, "tpe")  # no hand-picked head start
    t0 = time.time()
    n = 4
    tpe_study = run_search(dataset, space=seedless, n_trials=n, sampler="tpe", study_name="tpe", studies_dir=work,
                           seed=args.seed, show_progress=False)
    while epochs_used(tpe_study) < budget:
        n += 2
        tpe_study = run_search(dataset, space=seedless, n_trials=n, sampler="tpe", study_name="tpe", studies_dir=work,
                               seed=args.seed, show_progress=False)
    t_tpe = time.time() - t0

    random_best = random_study.best_value
    tpe_best = tpe_study.best_value
    random_curve, tpe_curve = curve(random_study), curve(tpe_study)
    random_epochs = epochs_to_reach(random_curve, random_best)
    tpe_epochs = epochs_to_reach(tpe_curve, random_best)
    print(f"dataset {args.dataset}: budget {budget} training epochs each")
    print(f"random search, no pruning: {len(random_study.trials):3d} trials, {epochs_used(random_study):4d} epochs, "
          f"best val {random_best:.4f}, reached at epoch {random_epochs}, {t_random:.0f}s")
    print(f"TPE + ASHA:                {len(tpe_study.trials):3d} trials, {epochs_used(tpe_study):4d} epochs, "
          f"best val {tpe_best:.4f}, reached random's best at epoch {tpe_epochs}, {t_tpe:.0f}s")
    if tpe_epochs:
        print(f"ratio of epochs needed to reach the random-search best (random / TPE+ASHA): {random_epochs / tpe_epochs:.2f}")
    else:
        print("TPE + ASHA did not reach the random-search best within the budget (ratio < 1)")


if __name__ == "__main__":
    main()
