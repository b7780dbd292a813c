"""The budget's calibration on this CPU: timing small batches vs the space's largest, side by side.

A budgeted search first times an epoch of every model/width its space can
choose (``autocls.search.budget.seconds_per_epoch``); that time is taken from
the budget before any trial trains.  On a CPU it times 128-image steps (a
warm-up and two timed steps); this prints what that costs and estimates
against the space's largest batch with three timed steps, as it did before.
Random images (speed does not depend on pixel values) in CIFAR-10's shapes:
45,000 training images, 5,000 val and 5,000 test.

With ``--real-epochs`` each timing round is followed by one real epoch of the
space's first seed recipe at each width the calibration timed (the trainer,
the recipe's own batch, val evaluated), and the calibration's estimate (as
the plan reads it, :data:`~autocls.search.budget.EPOCH_MARGIN` included) is
printed against it: estimate and epoch side by side, minutes apart at most,
so that the machine's drift between a search's calibration and its trials is
told apart from a bias of the estimate itself.

    python benchmarks/calibration.py                    # the cpu-small preset
    python benchmarks/calibration.py --space cifar10
    python benchmarks/calibration.py --repeat 3 --train-images 40000   # the spread of the search's own timing
    python benchmarks/calibration.py --repeat 3 --train-images 40000 --real-epochs   # against real epochs
    python benchmarks/calibration.py --trace 120 --train-images 40000   # the calibration again and again

With ``--trace S`` the search's calibration runs again and again for S
seconds and prints each estimate as it comes, then the spread over them: of
each config's seconds (what the plan reads) and of each config's seconds
relative to the first config's (what the configs cost against each other).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.data.splits import DataSplits  # noqa: E402
from autocls.search.budget import CPU_TIMING_BATCH, EPOCH_MARGIN, config_key, configs, seconds_per_epoch  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import TrainConfig, train  # noqa: E402
from trial_speed import synthetic_cifar  # noqa: E402


def cifar10_shaped(n_train: int = 45_000, n_eval: int = 5_000) -> SimpleNamespace:
    """What the calibration reads of a DataSplits: the train images it steps on and the split sizes."""
    generator = torch.Generator().manual_seed(0)
    return SimpleNamespace(train_x=torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=generator),
                           train_y=torch.randint(0, 10, (n_train,), generator=generator),
                           val_y=torch.zeros(n_eval, dtype=torch.int64), test_y=torch.zeros(n_eval, dtype=torch.int64),
                           mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), image_shape=(3, 32, 32), num_classes=10)


def real_epochs(space: SearchSpace, data: DataSplits) -> dict[str, float]:
    """Seconds of one real epoch (training and val evaluation) of the space's first seed at each timed width."""
    seed = {**space.fixed, **space.seeds[0]} if space.seeds else dict(space.fixed)
    seconds = {}
    for config in configs(space):
        seen = []
        train(TrainConfig.from_dict({**seed, **config, "epochs": 1}), data, reporter=seen.append)
        seconds[config_key(config)] = seen[-1]["epoch_time"] + seen[-1]["eval_time"]
    return seconds


def span(values: list[float], digits: int = 0) -> str:
    """``min-max`` of ``values``."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def trace(space: SearchSpace, data, threads: int, seconds: float) -> None:
    """The calibration run back to back for ``seconds``: each estimate, then their spread, absolute and relative."""
    start, estimates = time.perf_counter(), []
    while time.perf_counter() - start < seconds:
        estimates.append(seconds_per_epoch(space, data, threads=threads))
        print(f"{time.perf_counter() - start:6.1f} s: " + ", ".join(f"{key} {s:.0f}" for key, s in estimates[-1].items()),
              flush=True)
    first = next(iter(estimates[0]))
    print(f"\n{len(estimates)} calibrations in {time.perf_counter() - start:.0f} s")
    for key in estimates[0]:
        absolute, relative = [e[key] for e in estimates], [e[key] / e[first] for e in estimates]
        versus = f"; relative to {first}: {span(relative, 2)} (max/min {max(relative) / min(relative):.2f})"
        print(f"{key}: {span(absolute)} s an epoch (max/min {max(absolute) / min(absolute):.2f}, "
              f"median {statistics.median(absolute):.0f}){versus if key != first else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cpu-small")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each way this many times, one after the other, and print the range")
    parser.add_argument("--train-images", type=int, default=45_000,
                        help="training images an epoch (default 45,000; budget.py's runs train on 40,000)")
    parser.add_argument("--real-epochs", action="store_true",
                        help="after each timing, train one real epoch of the first seed at each width, and print "
                             "the small-batch estimate against it")
    parser.add_argument("--trace", type=float, default=None, metavar="S",
                        help="run the search's calibration back to back for S seconds and print how it varies")
    args = parser.parse_args()
    space = SearchSpace.load(args.space)
    largest = space.largest("batch_size", 128)
    data, threads = cifar10_shaped(args.train_images), os.cpu_count()
    torch.set_num_threads(threads)  # the real epochs' threads, as the calibration's
    if args.trace is not None:
        trace(space, data, threads, args.trace)
        return
    splits = synthetic_cifar(args.train_images, eval_images=5_000) if args.real_epochs else None
    estimates, seconds = {"small": [], "largest": []}, {}  # every timing's estimates; the first timing's cost
    real = []  # each round's real epochs
    for _ in range(args.repeat):
        for label, batch, steps in (("small", CPU_TIMING_BATCH, 2), ("largest", largest, 3)):
            start = time.perf_counter()
            estimates[label].append(seconds_per_epoch(space, data, threads=threads, steps=steps, batch=batch))
            took = time.perf_counter() - start
            seconds.setdefault(label, took)
            print(f"{label}: batch {batch}, a warm-up and {steps} timed steps per config: {took:.1f} s", flush=True)
        if splits is not None:
            real.append(real_epochs(space, splits))
            print("real epochs: " + ", ".join(f"{key} {s:.0f} s (estimated {estimates['small'][-1][key]:.0f})"
                                              for key, s in real[-1].items()), flush=True)
    small, large = estimates["small"][0], estimates["largest"][0]  # the table shows the first timing
    print(f"\n{'config':18s} {'s/epoch @' + str(CPU_TIMING_BATCH):>14s} {'s/epoch @' + str(largest):>14s} {'ratio':>7s}")
    for key in small:
        print(f"{key:18s} {small[key]:14.0f} {large[key]:14.0f} {small[key] / large[key]:7.2f}")
    if args.repeat > 1:
        def spread(label: str, key: str) -> str:
            return span([e[key] for e in estimates[label]])

        print(f"\nover {args.repeat} timings each (min-max s/epoch): " + "; ".join(
            f"{key} {spread('small', key)} @{CPU_TIMING_BATCH}, {spread('largest', key)} @{largest}" for key in small))
    if real:
        ratios = {key: [e[key] / r[key] for e, r in zip(estimates["small"], real)] for key in real[0]}
        print(f"\nestimate @{CPU_TIMING_BATCH} / real epoch, per round (the estimate includes EPOCH_MARGIN "
              f"{EPOCH_MARGIN:g}; without it, divide by that): " + "; ".join(
                  f"{key} {', '.join(f'{x:.2f}' for x in values)} (median {statistics.median(values):.2f})"
                  for key, values in ratios.items()))
    print(f"\ncalibration time, largest batch / small batch: {seconds['largest'] / seconds['small']:.1f}x "
          f"({seconds['largest']:.0f} s vs {seconds['small']:.0f} s on {threads} threads)")

if __name__ == "__main__":
    main()
