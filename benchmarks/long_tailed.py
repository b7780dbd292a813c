"""Long-tailed real photos: the preset's seed recipe with each class weighting, side by side, on a balanced test.

CIFAR-10-LT as the long-tailed literature builds it (Cui et al. 2019): from the
shared CIFAR-10 training JPEGs, 100 val and 500 test images of each class are
held out (balanced, so that top-1 on them is the balanced accuracy), and class
``i`` of the sorted classes keeps ``head * ratio**(-i/9)`` training images
(2,000 down to 20 by default, 4,968 in all).  The CPU preset's first seed recipe
then trains on them once per weighting, each for the same wall time on this
machine's cores, epochs re-fitted to it as a search's trial's are:

  none            plain cross-entropy (what a search's trials train with);
  class_balanced  the loss weighted by the inverse effective number of images
                  of each class (``class_weighting: class_balanced``, Cui et al.);
  inverse         weighted by the inverse class frequency;
  sampling        class-balanced batches instead (``weighted_sampling: true``);
  logit_adjusted  the logit-adjusted loss of Menon et al. 2021 (``logit_adjustment: 1``): the loss sees the
                  logits plus log(class prior), unweighted.

Printed per weighting: epochs, wall seconds, balanced test top-1, top-1 on the three most and the three least
frequent classes, and the three weakest classes; and each weighting's top-1 against ``none``'s, from this run.

With ``--search``, ``autocls search`` itself instead, on the folder as a user would have it: the long-tailed
``train/`` and the balanced ``test/``, no ``val/`` (the search carves it from ``train/``, as long-tailed), once
per ``--metric`` for the same budget (the CPU preset; ranked by balanced accuracy, it also weighs the loss by
class). Printed per metric: trials, wall seconds, and the closing ensemble's figures as above.

    python benchmarks/long_tailed.py                        # 3 minutes a weighting (about 16 minutes)
    python benchmarks/long_tailed.py --time-budget 90s --weightings none,class_balanced
    python benchmarks/long_tailed.py --search               # two 3-minute searches
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import cifar10_jpg_folder, split_folders  # noqa: E402

from autocls.artifacts import TrialArtifacts  # noqa: E402
from autocls.data import prepare_data  # noqa: E402
from autocls.metrics import RANKING_METRICS, per_class_accuracy, weakest_classes  # noqa: E402
from autocls.search import run_search  # noqa: E402
from autocls.search.cli import parse_duration  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import Runtime, TrainConfig, train  # noqa: E402

WEIGHTINGS = {"none": {}, "class_balanced": {"class_weighting": "class_balanced"},
              "inverse": {"class_weighting": "inverse"}, "sampling": {"weighted_sampling": True},
              "logit_adjusted": {"logit_adjustment": 1.0}}


def long_tailed_folder(work: Path, head: int, ratio: float) -> Path:
    """``work/cifar10-lt/{train,val,test}``: 100 val and 500 test images a class, and a long-tailed train part."""
    (work / "jpg").mkdir(parents=True)
    root = split_folders(cifar10_jpg_folder(5000, work / "jpg"), work / "cifar10-lt", val=100, test=500)
    for i, folder in enumerate(sorted((root / "train").iterdir())):
        keep = max(1, round(head * ratio ** (-i / 9)))
        for f in sorted(folder.iterdir())[keep:]:
            f.unlink()
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=parse_duration, default=180.0, help="wall time a weighting (default 3m)")
    parser.add_argument("--weightings", default=",".join(WEIGHTINGS), help=f"comma-separated, of {', '.join(WEIGHTINGS)}")
    parser.add_argument("--head", type=int, default=2000, help="training images of the most frequent class")
    parser.add_argument("--ratio", type=float, default=100.0, help="most over least frequent class")
    parser.add_argument("--search", action="store_true", help="autocls search ranked by each --metrics instead")
    parser.add_argument("--metrics", default=",".join(RANKING_METRICS), help="with --search: comma-separated")
    args = parser.parse_args()
    chosen = (args.metrics if args.search else args.weightings).split(",")
    if unknown := set(chosen) - set(RANKING_METRICS if args.search else WEIGHTINGS):
        sys.exit(f"unknown {'metric' if args.search else 'weighting'}(s) {sorted(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="autocls-lt-"))
    root = long_tailed_folder(work, args.head, args.ratio)
    data = prepare_data(str(root))
    counts = np.bincount(data.train_y.numpy(), minlength=data.num_classes)
    print(f"training images a class: {', '.join(f'{c} {n}' for c, n in zip(data.classes, counts))}; "
          f"val {len(data.val_y)}, test {len(data.test_y)} (balanced); {args.time_budget:.0f} s a "
          f"{'search' if args.search else 'weighting'}")
    head, tail = np.argsort(-counts, kind="stable")[:3], np.argsort(counts, kind="stable")[:3]
    if args.search:
        searches(root, work, chosen, args.time_budget, data.classes, head, tail)
        return
    space = SearchSpace.load("cpu-small")
    test_y = data.test_y.numpy()
    rows = []
    for name in chosen:
        cfg = TrainConfig.from_dict({**space.fixed, **space.seeds[0], **WEIGHTINGS[name], "epochs": space.max_epochs})
        start = time.time()
        end = start + args.time_budget
        out = work / f"run-{name}"
        result = train(cfg, data, runtime=Runtime(), out_dir=out, deadline=end, fit_until=end)
        wall = time.time() - start
        probs, _ = TrialArtifacts(out).load_probs("test")
        accuracy = per_class_accuracy(probs, test_y, data.num_classes)  # the test part is balanced: means are top-1
        balanced, weakest = weakest_classes(probs, test_y, data.classes)
        rows.append((name, result.epochs_run, wall, balanced, accuracy[head].mean(), accuracy[tail].mean(), weakest))
        print(f"  {name}: balanced test top-1 {balanced:.2%} in {wall:.0f} s, {result.epochs_run} epochs", flush=True)
    print(f"\n{'weighting':15s} {'epochs':>6s} {'wall s':>7s} {'balanced':>9s} {'head 3':>7s} {'tail 3':>7s} "
          f"{'vs none':>8s}  weakest classes")
    first = next((r for r in rows if r[0] == "none"), rows[0])
    for name, epochs, wall, balanced, head_acc, tail_acc, weakest in rows:
        print(f"{name:15s} {epochs:6d} {wall:7.0f} {balanced:9.2%} {head_acc:7.2%} {tail_acc:7.2%} "
              f"{100 * (balanced - first[3]):+7.2f}p  " + ", ".join(f"{c} {a:.0%}" for c, a, _ in weakest))


def searches(root: Path, work: Path, metrics: list[str], budget: float, classes: list[str], head: np.ndarray,
             tail: np.ndarray) -> None:
    """``autocls search`` with its preset on ``root``'s train/ and test/ (val carved from train/), per metric."""
    from autocls.ensemble.build import study_data

    folder = work / "cifar10-lt-no-val"
    for part in ("train", "test"):
        shutil.copytree(root / part, folder / part, copy_function=os.link)
    rows = []
    for metric in metrics:
        start = time.time()
        study = run_search(str(folder), n_trials=None, time_budget_s=budget, metric=metric, study_name=f"lt-{metric}",
                           studies_dir=work / "studies")
        wall = time.time() - start
        probs = np.load(Path(study.user_attrs["ensemble"]) / "test_probs.npy")
        test_y = study_data(study).test_y.numpy()
        accuracy = per_class_accuracy(probs, test_y, len(classes))
        balanced, weakest = weakest_classes(probs, test_y, classes)
        finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials(deepcopy=False))
        rows.append((metric, finished, wall, balanced, accuracy[head].mean(), accuracy[tail].mean(), weakest))
    print(f"\n{'ranked by':18s} {'trials':>6s} {'wall s':>7s} {'balanced':>9s} {'head 3':>7s} {'tail 3':>7s} "
          f"{'vs first':>8s}  weakest classes (the closing ensemble on the balanced test part)")
    for metric, finished, wall, balanced, head_acc, tail_acc, weakest in rows:
        print(f"{metric:18s} {finished:6d} {wall:7.0f} {balanced:9.2%} {head_acc:7.2%} {tail_acc:7.2%} "
              f"{100 * (balanced - rows[0][3]):+7.2f}p  " + ", ".join(f"{c} {a:.0%}" for c, a, _ in weakest))


if __name__ == "__main__":
    main()
