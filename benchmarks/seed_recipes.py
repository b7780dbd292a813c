"""The preset's seed recipes side by side on real CIFAR-10 photos: test accuracy and wall time per recipe.

The shared CIFAR-10 training JPEGs are split as in ``budget.py`` (40k / 5k / 5k,
stratified, seeded); each seed recipe of the space trains on the 40k part for
``--epochs`` epochs on this device, alone, and is scored on the 5k test part.
Printed per recipe: model, epochs, wall seconds, images/s, test top-1, and each
recipe's wall time and accuracy relative to the first one (all from this run).

    python benchmarks/seed_recipes.py --space cpu-small --epochs 4          # CPU
    python benchmarks/seed_recipes.py --space cifar10 --device cuda --epochs 10   # a GPU
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import split_cifar10  # noqa: E402

from autocls.data import prepare_data  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import Runtime, TrainConfig, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cpu-small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    data = prepare_data(str(split_cifar10(Path(tempfile.mkdtemp(prefix="autocls-seeds-")))))
    space = SearchSpace.load(args.space)
    rows = []
    for i, seed in enumerate(space.seeds):
        cfg = TrainConfig.from_dict({**space.fixed, **seed, "epochs": args.epochs})
        start = time.time()
        result = train(cfg, data, runtime=Runtime(device=args.device), out_dir=work / f"seed{i}",
                       reporter=lambda m: print(f"  seed {i} epoch {m['epoch']}: val {m['val_acc']:.4f}, "
                                                f"{m['epoch_time']:.1f} s", flush=True))
        rows.append((f"{i}: {cfg.model} x{cfg.width}", time.time() - start,
                     result.history[-1]["images_per_s"], result.test_acc))
        print(f"  seed {i}: test {result.test_acc:.2%} in {rows[-1][1]:.0f} s", flush=True)
    print(f"\n{'seed recipe':24s} {'epochs':>6s} {'wall s':>8s} {'img/s':>8s} {'test':>7s} {'wall/first':>10s} "
          f"{'test-first':>10s}")
    for name, wall, speed, acc in rows:
        print(f"{name:24s} {args.epochs:6d} {wall:8.0f} {speed:8.0f} {acc:7.2%} {wall / rows[0][1]:10.2f} "
              f"{100 * (acc - rows[0][3]):+9.2f}p")


if __name__ == "__main__":
    main()
