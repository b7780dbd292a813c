"""AutoAugment-family policies, per image: autocls's batched policies vs. torchvision per image.

torchvision's v2 policies draw one op per call, so drawing per image means
one call per image (what a DataLoader does).  autocls draws per image and
applies each op once over the images that drew it.  Both run side by side on
the same batch of real CIFAR-10 photos (or random images without the shared
archive), on one device:

    python benchmarks/augment_policies.py                  # CPU
    python benchmarks/augment_policies.py --device cuda    # a GPU
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.data.policies import POLICIES, create_policy  # noqa: E402
from autocls.data.sources import decode_images  # noqa: E402
from _shared_data import SHARED, cifar10_jpg_folder  # noqa: E402

def photos(n: int) -> torch.Tensor:
    if not SHARED.exists():
        print(f"({SHARED} absent: random images)")
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    files = sorted(cifar10_jpg_folder(per_class=100).glob("*/*.jpg"))
    images, _ = decode_images([files[i % len(files)] for i in range(n)], size=None)
    return images


def rate(fn, x: torch.Tensor, repeats: int, device: torch.device) -> float:
    fn(x)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return repeats * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    x = photos(args.batch_size).to(device)
    from torchvision.transforms import v2

    reference = {"randaugment": v2.RandAugment(), "trivialaugment": v2.TrivialAugmentWide(),
                 "autoaugment": v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)}
    print(f"device {device}, batch {args.batch_size} of 32x32 RGB uint8, {args.repeats} batches each")
    for name in POLICIES:
        ours = rate(create_policy(name), x, args.repeats, device)
        tv = reference[name]
        per_image = rate(lambda b: torch.stack([tv(img) for img in b]), x, args.repeats, device)
        print(f"{name:15s} autocls batched {ours:10,.0f} img/s   torchvision per image {per_image:9,.0f} img/s   "
              f"ratio {ours / per_image:5.1f}x")


if __name__ == "__main__":
    main()
