"""Test-time augmentation side by side: each of ``autocls.inference.TTA_MODES`` on the same trained runs, scored
on val and on the held-out test part, with the test images each mode fixes and breaks against flip; then the
test accuracy of the mode each rule picks from the val scores: the highest (ties to fewer views, the rule
before 2026-12-03) and ``autocls.ensemble.build.tta_by_val`` (the most views within a standard error).

Scores runs that are already trained: ``autocls train --out`` folders, or a study's ``trials/*`` folders
(``benchmarks/budget.py`` leaves both in its work folder, ``autocls-budget-*`` in the temporary directory,
with its split of the shared photos in ``cifar10/`` beside them, the default ``--data``):

    python benchmarks/tta_modes.py /tmp/autocls-budget-*/recipe /tmp/autocls-budget-*/studies/a/trials/*
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.artifacts import WEIGHTS_FILE  # noqa: E402
from autocls.data import prepare_data  # noqa: E402
from autocls.data.augment import BatchAugment  # noqa: E402
from autocls.ensemble.build import tta_by_val  # noqa: E402
from autocls.inference import TTA_MODES, load_trained_model, predict_proba, trained_precision  # noqa: E402


def data_folder(run: Path) -> Path:
    """The split beside ``budget.py``'s runs: ``<work>/recipe`` or ``<work>/studies/<study>/trials/<trial>``."""
    found = next((p / "cifar10" for p in run.resolve().parents if (p / "cifar10" / "test").is_dir()), None)
    if found is None:
        sys.exit(f"{run}: no cifar10/ split beside it (budget.py's work folder); give the runs' data with --data")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="folders with best.safetensors and config.yaml")
    parser.add_argument("--data", type=Path, help="the ImageFolder the runs trained on (default: beside them)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"{'run':48s} {'split':5s} " + " ".join(f"{m:>14s}" for m in TTA_MODES) + "  vs flip: fixed broken")
    gains, splits, picks = [], {}, {"val highest": [], "tta_by_val": [], "flip-translate": []}
    for run in args.runs:
        if not (run / WEIGHTS_FILE).is_file():
            continue
        folder = args.data or data_folder(run)
        if folder not in splits:  # decoding a split takes ~40 s on 2 cores: once per folder
            splits[folder] = prepare_data(str(folder))
        data = splits[folder]
        config = yaml.safe_load((run / "config.yaml").read_text())
        model = load_trained_model(config, run / WEIGHTS_FILE, data.num_classes, data.image_shape[0], device)
        normalize = BatchAugment(data.mean, data.std, image_size=config.get("image_size")).normalize
        top1_of = {}
        for split, images, labels in (("val", data.val_x, data.val_y), ("test", data.test_x, data.test_y)):
            right = {m: predict_proba(model, images, normalize, tta=m, **trained_precision(config, device))
                     .argmax(1) == labels for m in TTA_MODES}
            top1 = {m: float(r.float().mean()) for m, r in right.items()}
            fixed = int((right["flip-translate"] & ~right["flip"]).sum())
            broken = int((right["flip"] & ~right["flip-translate"]).sum())
            name = f"{run.parent.name}/{run.name}"[-48:]
            print(f"{name:48s} {split:5s} " + " ".join(f"{top1[m]:14.2%}" for m in TTA_MODES)
                  + f"  {fixed:>13d} {broken:>6d}", flush=True)
            gains.append((split, top1["flip-translate"] - top1["flip"], top1["flip"] - top1["none"]))
            top1_of[split] = top1
        val, test = top1_of["val"], top1_of["test"]
        picks["val highest"].append(test[max(TTA_MODES, key=lambda m: (val[m], -TTA_MODES.index(m)))])
        picks["tta_by_val"].append(test[tta_by_val(val, len(data.val_y))[0]])
        picks["flip-translate"].append(test["flip-translate"])
    for split in ("val", "test"):
        these = [g for s, *g in gains if s == split]
        if these:
            print(f"mean over {len(these)} runs, {split}: flip - none {100 * sum(g[1] for g in these) / len(these):+.2f} "
                  f"points, flip-translate - flip {100 * sum(g[0] for g in these) / len(these):+.2f} points")
    if picks["val highest"]:
        base = sum(picks["val highest"]) / len(picks["val highest"])
        print(f"\n{'mode picked by':16s} {'mean test':>9s} {'- val highest':>13s}   per run")
        for rule, accs in picks.items():
            mean = sum(accs) / len(accs)
            print(f"{rule:16s} {mean:9.2%} {100 * (mean - base):+12.2f}p   " + " ".join(f"{a:.2%}" for a in accs))


if __name__ == "__main__":
    main()
