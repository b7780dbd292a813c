"""How sure a run's predictions say they are, against how often they are right: raw and at the fitted temperature.

`autocls train` ends by fitting a temperature to its best epoch's val probabilities (Guo et al. 2017), and
`autocls predict` of the run applies it.  This trains each model with its own recipe for ``--budget`` on the
shared CIFAR-10 photos (the folder's own 20% test split, 10% of the rest val, as `autocls train ./train` splits
it), then prints the test split's top-1, mean confidence, NLL and ECE of the raw softmax and at the temperature the
run recorded, side by side: airbench's recipe trains with label smoothing 0.2, ResNet-18's default without.

    python benchmarks/confidence.py
    python benchmarks/confidence.py --models airbench --budget 1m --per-class 1000
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared_data import cifar10_jpg_folder  # noqa: E402

from autocls.data import prepare_data  # noqa: E402
from autocls.ensemble.voting import apply_temperature  # noqa: E402
from autocls.metrics import summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["airbench", "resnet18"])
    parser.add_argument("--budget", default="2m", help="each run's --time-budget")
    parser.add_argument("--per-class", type=int, default=5000, help="photos of each class (all 5,000 by default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autocls-confidence-") as work:
        folder = cifar10_jpg_folder(args.per_class, Path(work))
        labels = prepare_data(str(folder), None, 0.1).test_y.numpy()  # the split `autocls train` makes of it
        print(f"{args.per_class * 10} photos, {len(labels)} test; each model trained for {args.budget}")
        for model in args.models:
            run = Path(work) / f"run-{model}"
            subprocess.run([sys.executable, "-m", "autocls", "train", str(folder), "--model", model,
                            "--time-budget", args.budget, "--out", str(run)], check=True, capture_output=True)
            temperature = json.loads((run / "result.json").read_text())["temperature"]
            raw = np.load(run / "test_probs.npz")["probs"]
            for name, probs in (("raw", raw), (f"at temperature {temperature:.2f}", apply_temperature(raw, temperature))):
                scores = summary(probs, labels)  # the scores an ensemble's table prints
                print(f"{model:>10} {name:>22}: top-1 {scores['top1']:.2%}, mean confidence {probs.max(1).mean():.2%}, "
                      f"NLL {scores['nll']:.4f}, ECE {scores['ece']:.4f}", flush=True)


if __name__ == "__main__":
    main()
