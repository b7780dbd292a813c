"""A small folder's trials: one long run of the preset's seed, or several short ones averaged, on real photos.

A search sizes its trials so that each slot fits a few full-length trials, and where they do not, gives one
trial the whole budget: an under-trained model gains more from epochs than an ensemble from a second member
(on all 40,000 CIFAR-10 training photos; RESULTS.md, issue 10).  On a folder of a few hundred photos an epoch
is up to 30 passes over them (``MAX_PASSES_PER_EPOCH``), and the preset's 24 epochs are 720 passes.  This
trains the cpu-small preset's first seed recipe on ``--train-per-class`` photos of each class of the shared
CIFAR-10 JPEGs, for each of ``--epochs`` from ``--inits`` initialisations (seeds 0, 1, ...), each alone with
``autocls train``, and scores it on 5,000 held-out photos (flip TTA, as a search's members vote).  Printed per
length: the members' mean, the average of all its members' probabilities, the passes over the training photos
and the wall time a member took; then each length's ensemble against one run of as many epochs in all.

    python benchmarks/small_folder.py                                   # 50 a class, 2/4/12 epochs x 3 (~15 min)
    python benchmarks/small_folder.py --epochs 1,2 --inits 2 --train-per-class 20   # a smoke run

The photos are split as in ``budget.py`` (500 val and 500 test a class held out; no member trains or is selected
on the test part).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import split_cifar10  # noqa: E402
from budget import matmul_gflops, top1, train_recipe  # noqa: E402

from autocls.data import prepare_data  # noqa: E402
from autocls.search.budget import trained_per_epoch  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="2,4,12", help="comma-separated epochs of a member")
    parser.add_argument("--inits", type=int, default=3, help="initialisations (seeds 0..N-1) at each length")
    parser.add_argument("--train-per-class", type=int, default=50)
    parser.add_argument("--space", default="cpu-small")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autocls-small-"))
    data = split_cifar10(work, args.train_per_class)
    photos = prepare_data(str(data))  # decoded once: every member's probabilities are of these test photos
    space = SearchSpace.load(args.space)
    passes = trained_per_epoch(space, len(photos.train_y)) // len(photos.train_y)  # as the search's plan counts them
    cores = os.cpu_count() or 1
    print(f"{cores} cores, fp32 matmul {matmul_gflops(cores):.0f} GFLOP/s; {len(photos.train_y)} training photos, "
          f"{passes} passes an epoch; the seed recipe of {args.space}", flush=True)
    lengths = [int(e) for e in args.epochs.split(",")]
    members: dict[int, list] = {}  # epochs -> [(wall s, flip probs)]
    for epochs in lengths:
        for init in range(args.inits):
            recipe = {**space.fixed, **space.seeds[0], "epochs": epochs}
            wall, result, probs = train_recipe(data, photos, work, recipe, "2h", init, f"e{epochs}-{init}")
            members.setdefault(epochs, []).append((wall, probs["flip"]))
            print(f"{epochs} epochs, init {init}: {result['epochs_run']} run in {wall:.0f} s, test (flip) "
                  f"{top1(probs['flip'], photos.test_y):.2%}", flush=True)
    labels = photos.test_y
    print(f"\n{'epochs':>6s} {'passes':>6s} {'wall s':>7s} {'members':>8s} {'mean':>7s} {'averaged':>8s}")
    single = {}
    for epochs, runs in members.items():
        scores = [top1(p, labels) for _, p in runs]
        single[epochs] = sum(scores) / len(scores)
        averaged = top1(sum(p for _, p in runs), labels)
        wall = sum(w for w, _ in runs) / len(runs)
        print(f"{epochs:6d} {epochs * passes:6d} {wall:7.0f} {len(runs):8d} {single[epochs]:7.2%} {averaged:8.2%}")
    print()
    for epochs, runs in members.items():
        for k in range(2, len(runs) + 1):
            if k * epochs in single:
                averaged = top1(sum(p for _, p in runs[:k]), labels)
                print(f"{k} x {epochs} epochs averaged {averaged:.2%} against 1 x {k * epochs} epochs "
                      f"{single[k * epochs]:.2%} (mean of {len(members[k * epochs])}): "
                      f"{100 * (averaged - single[k * epochs]):+.2f} points")


if __name__ == "__main__":
    main()
