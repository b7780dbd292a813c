"""Which net ``autocls train`` should train when it is not given one, on real CIFAR-10 photos and on digits.

A user's first run is often ``autocls train ./photos --time-budget 2m`` with no ``--model``. This trains each
candidate default the way that command would (``autocls train <data> --model <net>``, each net with its own
recipe, width and epochs fitted to the budget) side by side in one run, and prints each one's wall time and
test top-1, and the difference to the first net:

    python benchmarks/default_model.py                                   # 2 and 5 minutes a run (about 16 minutes)
    python benchmarks/default_model.py --budgets 30s --train-per-class 100   # a smoke run

The shared CIFAR-10 JPEGs are split as in ``budget.py`` (40k / 5k / 5k): every run trains on the same
training part, keeps its best epoch on the same val part and is scored on the same held-out test part.
Digits trains each net with no budget, its recipe's epochs, as ``autocls train digits --model <net>`` does.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budget import AUTOCLS, run, runs_side_by_side  # noqa: E402

NETS = ("resnet18", "airbench")


def train(data: str, net: str, work: Path, out: str, extra: list[str]) -> tuple[float, dict]:
    """``autocls train data --model net`` in ``work``: its wall time and ``result.json`` with the width trained."""
    wall, _ = run([*AUTOCLS, "train", data, "--model", net, "--out", str(work / out), *extra], work)
    result = json.loads((work / out / "result.json").read_text())
    return wall, {**result, "width": yaml.safe_load((work / out / "config.yaml").read_text())["width"]}


def main() -> None:
    args, work, data = runs_side_by_side(__doc__, "autocls-default-model-")
    print(f"nets {', '.join(NETS)}", flush=True)
    rows = []
    for budget in args.budgets.split(","):
        for seed in range(args.seeds):
            for net in NETS:
                wall, result = train(str(data), net, work, f"{net}-{budget}-{seed}",
                                     ["--time-budget", budget, "--seed", str(seed)])
                rows.append(("photos", budget, seed, net, wall, result))
                print(f"photos {budget} seed {seed} {net}: width {result['width']:g}, "
                      f"{result['epochs_run']} epochs in {wall:.0f} s, test {result['test_acc']:.2%}", flush=True)
    for net in NETS:
        wall, result = train("digits", net, work, f"{net}-digits", [])
        rows.append(("digits", "-", 0, net, wall, result))
        print(f"digits {net}: {result['epochs_run']} epochs in {wall:.0f} s, test {result['test_acc']:.2%}",
              flush=True)

    print(f"\n{'data':8} {'budget':>6} {'seed':>4} {'net':10} {'width':>5} {'epochs':>6} {'wall s':>6} "
          f"{'test':>7} {'vs ' + NETS[0]:>12}")
    first = {}
    for data_name, budget, seed, net, wall, result in rows:
        key = (data_name, budget, seed)
        first.setdefault(key, result["test_acc"])
        gain = result["test_acc"] - first[key]
        print(f"{data_name:8} {budget:>6} {seed:>4} {net:10} {result['width']:>5g} "
              f"{result['epochs_run']:>6} {wall:>6.0f} {result['test_acc']:>7.2%} "
              f"{'' if net == NETS[0] else f'{gain * 100:+.2f}p':>12}")


if __name__ == "__main__":
    main()
