"""A training step of the zoo's nets at a photo's size against the 64x64 `autocls train` fits them to.

`autocls train ./photos` decodes phone photos to a shorter side of 256 (341x256 for 4:3), and the zoo's nets keep
every pixel in their first stage (a stride-1 stem, no max-pool): this times a step at that size and at
``ZOO_MAX_IMAGE_SIDE`` (``autocls.training.config.size_for_data``), and timm's ImageNet ResNet-18, whose stem
downsamples 4x, at both.  Random images (speed does not depend on pixel values), channels-last and on this
machine's threads, as the trainer runs; batch 32, the batch `autocls train` fits to a folder of a few hundred photos.

    python benchmarks/photo_size.py
    python benchmarks/photo_size.py --models resnet9 --steps 3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autocls.inference import fast_bf16  # noqa: E402
from autocls.training.config import ZOO_MAX_IMAGE_SIDE  # noqa: E402
from cpu_bf16 import images_per_s  # noqa: E402


def seconds_per_step(model_name: str, height: int, width: int, batch: int, steps: int) -> float:
    bf16 = fast_bf16(torch.device("cpu"))
    return batch / images_per_s(model_name, 1.0, batch, steps, bf16, size=(height, width), warm_up=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet9", "timm/resnet18"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    side = ZOO_MAX_IMAGE_SIDE
    print(f"cpu, {torch.get_num_threads()} threads, batch {args.batch}, median of {args.steps} steps after a warm-up")
    for name in args.models:
        photo = seconds_per_step(name, 256, 341, args.batch, args.steps)
        fitted = seconds_per_step(name, side, side, args.batch, args.steps)
        print(f"{name:>14}: {photo:7.2f} s a step at 341x256, {fitted:6.2f} s at {side}x{side}: "
              f"ratio {photo / fitted:5.1f}x", flush=True)


if __name__ == "__main__":
    main()
