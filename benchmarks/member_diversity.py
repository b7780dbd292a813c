"""Which second recipe an ensemble's first seed gains most from, on real CIFAR-10 photos.

On 2 CPU cores a 20-minute search trains the preset's first seed recipe, then
its second for what is left, and ensembles them; that lands level with the
first seed trained alone for the whole 20 minutes (RESULTS.md, issue 10): the
pair gains about as much over its better member as the shorter members lose.
A second member whose mistakes differ more from the first's would gain more.
This trains several recipes, each from ``--inits`` initialisations (seeds 0,
1, ...), every one alone with ``autocls train --time-budget`` at one width, and
averages every pair of members of different initialisations at each TTA mode.
Printed per kind of pair (the first seed with itself, with each other recipe):
how many pairs, their members' mean test top-1, the pairs' mean, and its gain
over the members' mean and over the better member.

    python benchmarks/member_diversity.py                      # 3 recipes x 3 inits x 4 minutes (about 40 minutes)
    python benchmarks/member_diversity.py --budget 30s --inits 2 --train-per-class 100   # a smoke run

The shared CIFAR-10 JPEGs are split as in ``budget.py`` (40k / 5k / 5k); no
member trains or is selected on the test part.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import split_cifar10  # noqa: E402
from budget import matmul_gflops, preset, top1, train_recipe  # noqa: E402

from autocls.data import prepare_data  # noqa: E402
from autocls.inference import TTA_MODES  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402


def recipes(space) -> dict[str, dict]:
    """The preset's two seeds and the first one with cutout and wider crops: stronger, other augmentation."""
    first, second = space.seeds[:2]
    return {"seed 0": first, "seed 1": second,
            "seed 0 + cutout": {**first, "cutout": 8, "crop_padding": 4, "label_smoothing": 0.1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="4m", help="wall time of each member")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--inits", type=int, default=3, help="initialisations (seeds 0..N-1) of each recipe")
    parser.add_argument("--train-per-class", type=int, default=4000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autocls-diversity-"))
    data = split_cifar10(work, args.train_per_class)
    photos = prepare_data(str(data))  # decoded once: every member's probabilities are of these test photos
    space = SearchSpace.load(preset(data))
    cores = os.cpu_count() or 1
    print(f"{cores} cores, fp32 matmul {matmul_gflops(cores):.0f} GFLOP/s; "
          f"each member {args.budget} at width {args.width:g}", flush=True)
    members = {}  # (recipe, init) -> probabilities by TTA mode
    labels = photos.test_y
    for name, recipe in recipes(space).items():
        for init in range(args.inits):
            out = f"{name.replace(' ', '').replace('+', '-')}-{init}"
            # the ceiling four times the preset's longest trial, which no member here reaches: the budget sets it
            full = {**space.fixed, **recipe, "width": args.width, "epochs": 4 * space.max_epochs}
            wall, result, probs = train_recipe(data, photos, work, full, args.budget, init, out)
            members[name, init] = probs
            print(f"{name}, init {init}: {result['epochs_run']} epochs in {wall:.0f} s, test "
                  + ", ".join(f"{tta} {top1(p, labels):.2%}" for tta, p in probs.items()), flush=True)
    first = "seed 0"
    for tta in TTA_MODES[1:]:
        print(f"\n{tta} TTA: {'pair':28s} {'pairs':>5s} {'members':>8s} {'pair':>7s} {'vs mean':>8s} {'vs better':>9s}")
        for other in dict.fromkeys(name for name, _ in members):
            pairs = [(a, b) for a, b in itertools.combinations(members, 2)
                     if a[1] != b[1] and {a[0], b[0]} == {first, other}]
            singles = [(top1(members[a][tta], labels), top1(members[b][tta], labels)) for a, b in pairs]
            together = [top1(members[a][tta] + members[b][tta], labels) for a, b in pairs]
            n = len(pairs)
            mean_members = sum(sum(s) / 2 for s in singles) / n
            mean_pair = sum(together) / n
            better = sum(t - max(s) for t, s in zip(together, singles)) / n
            print(f"{'':{len(tta) + 6}s}{first + ' & ' + other:28s} {n:5d} {mean_members:8.2%} {mean_pair:7.2%} "
                  f"{100 * (mean_pair - mean_members):+7.2f}p {100 * better:+8.2f}p")


if __name__ == "__main__":
    main()
