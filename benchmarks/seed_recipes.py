"""The preset's seed recipes side by side on real CIFAR-10 photos: test accuracy and wall time per recipe.

The shared CIFAR-10 training JPEGs are split as in ``budget.py`` (40k / 5k / 5k,
stratified, seeded); each seed recipe of the space trains on the 40k part for
``--epochs`` epochs on this device, alone, and is scored on the 5k test part.
Printed per recipe: model, epochs, wall seconds, images/s, test top-1, and each
recipe's wall time and accuracy relative to the first one (all from this run).

    python benchmarks/seed_recipes.py --space cpu-small --epochs 4          # CPU
    python benchmarks/seed_recipes.py --space cifar10 --device cuda --epochs 10   # a GPU

With ``--time-budget`` each recipe gets that wall time instead of a number of
epochs, and re-fits its epochs to it as a budgeted search's trial does (up to
the space's longest trial); with ``--widths`` each recipe runs at each of those
widths.  Which width a short budget should give its seed (fewer epochs of a
wider net, or more of a narrower one), side by side:

    python benchmarks/seed_recipes.py --seeds 1 --widths 0.375,0.5 --time-budget 250s

With ``--train-per-class`` the recipes train on that many images of each class (val and test keep 500 each);
``--epoch-images`` runs each recipe at each of those ``epoch_images`` (images an epoch trains on: several passes
over a small training part).  How many passes an epoch a small folder needs, side by side:

    python benchmarks/seed_recipes.py --seeds 1 --epochs 24 --train-per-class 50 --epoch-images 45000,15000,5000
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
from autocls.search.cli import parse_duration  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import Runtime, TrainConfig, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cpu-small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--time-budget", type=parse_duration, default=None,
                        help="wall time per run (e.g. 250s): epochs re-fitted to it, as a search's trials are")
    parser.add_argument("--widths", default=None, help="comma-separated widths to run each recipe at")
    parser.add_argument("--seeds", type=int, default=None, help="only the first N seed recipes")
    parser.add_argument("--train-per-class", type=int, default=4000, help="training images per class (default all)")
    parser.add_argument("--epoch-images", default=None, help="comma-separated epoch_images to run each recipe at")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autocls-seeds-"))
    data = prepare_data(str(split_cifar10(work, args.train_per_class)))
    space = SearchSpace.load(args.space)
    widths = [float(w) for w in args.widths.split(",")] if args.widths else [None]
    epoch_images = [int(n) for n in args.epoch_images.split(",")] if args.epoch_images else [None]
    rows = []
    for i, seed in enumerate(space.seeds[:args.seeds]):
        for width, images in ((w, n) for w in widths for n in epoch_images):
            varied = {**({"width": width} if width is not None else {}),
                      **({"epoch_images": images} if images is not None else {})}
            epochs = space.max_epochs if args.time_budget else args.epochs
            cfg = TrainConfig.from_dict({**space.fixed, **seed, **varied, "epochs": epochs})
            start = time.time()
            end = start + args.time_budget if args.time_budget else None
            name = f"{i}: {cfg.model} x{cfg.width}" + (f" {images // 1000}k/ep" if images is not None else "")
            result = train(cfg, data, runtime=Runtime(device=args.device),
                           out_dir=work / f"seed{i}-{cfg.width}-{cfg.epoch_images}",
                           deadline=end, fit_until=end,
                           reporter=lambda m: print(f"  {name} epoch {m['epoch']}/{m['epochs']}: val "
                                                    f"{m['val_acc']:.4f}, {m['epoch_time']:.1f} s", flush=True))
            rows.append((name, result.epochs_run, time.time() - start, result.history[-1]["images_per_s"],
                         result.test_acc))
            print(f"  {name}: test {result.test_acc:.2%} in {rows[-1][2]:.0f} s ({result.status})", flush=True)
    print(f"\n{'seed recipe':24s} {'epochs':>6s} {'wall s':>8s} {'img/s':>8s} {'test':>7s} {'wall/first':>10s} "
          f"{'test-first':>10s}")
    for name, epochs, wall, speed, acc in rows:
        print(f"{name:24s} {epochs:6d} {wall:8.0f} {speed:8.0f} {acc:7.2%} {wall / rows[0][2]:10.2f} "
              f"{100 * (acc - rows[0][4]):+9.2f}p")


if __name__ == "__main__":
    main()
