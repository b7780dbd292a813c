"""bf16 autocast vs fp32 on this CPU: training steps of a model, side by side in one process.

The trainer uses bf16 autocast on CPUs with bf16 instructions (``autocls.inference.fast_bf16``);
this measures what that buys here.  Random images (speed does not depend on pixel values),
channels-last as the trainer runs, the preset's batch size.

    python benchmarks/cpu_bf16.py                        # ResNet-9 at width 0.5, batch 256
    python benchmarks/cpu_bf16.py --width 0.25 --steps 10
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.inference import fast_bf16  # noqa: E402
from autocls.models.registry import model_from_config  # noqa: E402


def images_per_s(model_name: str, width: float, batch: int, steps: int, bf16: bool,
                 size: tuple[int, int] = (32, 32), warm_up: int = 2) -> float:
    """Training images a second of ``model_name`` on random ``size`` (height, width) images: the median step of
    ``steps`` after ``warm_up`` steps."""
    torch.manual_seed(0)
    model = model_from_config({"model": model_name, "width": width}, 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, *size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for step in range(steps + warm_up):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times[warm_up:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet9")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    print(f"{threads} threads; bf16 instructions: {fast_bf16(torch.device('cpu'))}")
    fp32 = images_per_s(args.model, args.width, args.batch_size, args.steps, bf16=False)
    bf16 = images_per_s(args.model, args.width, args.batch_size, args.steps, bf16=True)
    print(f"{args.model} width {args.width:g}, batch {args.batch_size}: fp32 {fp32:.0f} img/s, bf16 {bf16:.0f} img/s, "
          f"bf16 / fp32 = {bf16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
