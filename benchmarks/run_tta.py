"""What choosing a run's test-time augmentation on val is worth to ``autocls train --time-budget``, on real photos.

``autocls train`` with ``--tta auto`` (the default) keeps time at the end of its budget for the flip pass and
chooses the TTA on val, as a search's closing ensemble does; ``--tta none`` trains those seconds instead and
shows each image once. This trains the default net both ways from the same seed, side by side in one run, and
prints each run's epochs, wall time and held-out test top-1 (with its TTA), and the difference:

    python benchmarks/run_tta.py                                       # 2 and 5 minutes a run (about 15 minutes)
    python benchmarks/run_tta.py --budgets 20m --tta auto              # one run of 20 minutes
    python benchmarks/run_tta.py --budgets 30s --train-per-class 100   # a smoke run

After each ``--tta auto`` run it also prints the run's test top-1 at every TTA mode, predicted after the clock:
what the mode chosen, or one the budget kept no time for, is worth on the same weights.

The shared CIFAR-10 JPEGs are split as in ``budget.py`` (40k / 5k / 5k).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budget import AUTOCLS, run, runs_side_by_side, top1, tta_probs  # noqa: E402

from autocls.inference import TTA_MODES  # noqa: E402


def main() -> None:
    def tta_arms(parser):
        parser.add_argument("--tta", default="none,auto", help="the runs' --tta, comma-separated (default none,auto)")

    args, work, data = runs_side_by_side(__doc__, "autocls-run-tta-", tta_arms)
    photos = None
    print(f"{'budget':>6} {'seed':>4} {'--tta':6} {'epochs':>6} {'wall s':>6} {'TTA':15} {'test':>7} "
          f"{'plain':>7} {'vs none':>8}", flush=True)
    for budget in args.budgets.split(","):
        for seed in range(args.seeds):
            plain = None
            for tta in args.tta.split(","):
                out = work / f"{budget}-{seed}-{tta}"
                wall, _ = run([*AUTOCLS, "train", str(data), "--time-budget", budget, "--seed", str(seed),
                               "--tta", tta, "--out", str(out)], work)
                result = json.loads((out / "result.json").read_text())
                plain = result["test_acc_tta"] if tta == "none" else plain
                gain = "" if tta == "none" or plain is None else f"{(result['test_acc_tta'] - plain) * 100:+.2f}p"
                print(f"{budget:>6} {seed:>4} {tta:6} {result['epochs_run']:>6} {wall:>6.0f} {result['tta']:15} "
                      f"{result['test_acc_tta']:>7.2%} {result['test_acc']:>7.2%} {gain:>8}", flush=True)
                if tta == "auto":
                    from autocls.artifacts import TrialArtifacts
                    from autocls.data import prepare_data

                    photos = photos or prepare_data(str(data))
                    config = TrialArtifacts(out).load_config()
                    probs = tta_probs(out, config, photos, TTA_MODES)
                    print(f"{'':>18}{result['tta_choice']}\n{'':>18}test after the clock: "
                          + ", ".join(f"{mode} {top1(p, photos.test_y):.2%}" for mode, p in probs.items()), flush=True)


if __name__ == "__main__":
    main()
