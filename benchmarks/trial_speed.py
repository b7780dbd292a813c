"""Are training steps slower inside a Ray Tune trial than in a plain process?  Side by side, alternating.

The same run (the ``cpu-small`` preset's seed recipe on synthetic 32x32 images,
``--steps`` steps of one epoch, all cores) trains in this process and inside a
Ray Tune trial of a local Ray with all cores, one after the other, ``--rounds``
times, so that the machine's drift falls on both alike.  Printed per round:
each place's training images/s (the trainer's own epoch timing) and the ratio.

    python benchmarks/trial_speed.py                 # 3 rounds of 40 steps

Why: in the 20-minute benchmark a search's only trial ran its epochs ~12%
slower than the same recipe trained alone by ``autocls train`` (run after it,
so machine drift could not be told apart).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from autocls.data.splits import DataSplits  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import TrainConfig, train  # noqa: E402


def synthetic_cifar(train_images: int, seed: int = 0, eval_images: int = 500) -> DataSplits:
    """Random CIFAR-10-shaped splits a trainer runs on (speed does not depend on pixel values)."""
    gen = torch.Generator().manual_seed(seed)
    images = lambda n: torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)  # noqa: E731
    labels = lambda n: torch.randint(0, 10, (n,), generator=gen)  # noqa: E731
    return DataSplits("synthetic", [str(c) for c in range(10)], images(train_images), labels(train_images),
                      images(eval_images), labels(eval_images), images(eval_images), labels(eval_images),
                      (0.5,) * 3, (0.25,) * 3)


def images_per_s(recipe: dict, data: DataSplits, threads: int) -> float:
    """Training images/s of one epoch of ``recipe`` (the trainer's timing, evaluation left out)."""
    torch.set_num_threads(threads)
    seen = []
    train(TrainConfig.from_dict(recipe), data, reporter=seen.append)
    return seen[-1]["images_per_s"]


def in_a_ray_trial(recipe: dict, data: DataSplits, threads: int) -> float:
    """The same run inside a Ray Tune function trial with ``threads`` CPUs, as a search's trial runs."""
    from ray import tune

    def trial(config: dict, data: DataSplits) -> None:
        tune.report({"images_per_s": images_per_s(config["recipe"], data, config["threads"])})

    # Ray Tune's files of this trial are of no use afterwards: kept out of the working directory (a checkout)
    with tempfile.TemporaryDirectory(prefix="autocls-trial-speed-") as storage:
        tuner = tune.Tuner(tune.with_resources(tune.with_parameters(trial, data=data), {"cpu": threads}),
                           param_space={"recipe": recipe, "threads": threads},
                           run_config=tune.RunConfig(verbose=0, storage_path=storage))
        return tuner.fit()[0].metrics["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (one epoch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    space = SearchSpace.load("cpu-small")
    recipe = {**space.fixed, **space.seeds[0], "epochs": 1, "epoch_images": 0}  # an epoch: the images given
    data = synthetic_cifar(args.steps * recipe["batch_size"])
    ray.init(address="local", num_cpus=args.threads, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    print(f"{recipe['model']} x{recipe.get('width', 1.0)}, batch {recipe['batch_size']}, {args.steps} steps, "
          f"{args.threads} threads; torch {torch.__version__}")
    ratios = []
    for r in range(args.rounds):
        plain = images_per_s(recipe, data, args.threads)
        in_trial = in_a_ray_trial(recipe, data, args.threads)
        ratios.append(in_trial / plain)
        print(f"round {r + 1}: this process {plain:7.1f} img/s, Ray Tune trial {in_trial:7.1f} img/s, "
              f"trial / process = {ratios[-1]:.3f}", flush=True)
    print(f"median trial / process = {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
