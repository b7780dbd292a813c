"""Training throughput: autocls's trainer vs. a plain DataLoader + PIL-transforms loop, side by side.

Both train the same model with the same batch size, optimizer and augmentation
(random crop with 4px padding + horizontal flip) on the same real CIFAR-10
images, for the same number of steps, in this one process:

* autocls: ``autocls.training.train`` (uint8 data on the device, batched augmentation there);
* reference: a torchvision ``CIFAR10``-style dataset (PIL image per sample, torchvision
  transforms) in a ``DataLoader`` with ``num_workers`` = cores.

Printed: img/s of each, their ratio, and the model's achieved FLOP/s (counted with
``torch.utils.flop_counter.FlopCounterMode``) as a fraction of a matmul ceiling
measured on the same device.

    python benchmarks/throughput.py                                   # CPU, lenet
    python benchmarks/throughput.py --model resnet18 --batch-size 512 --device cuda --amp   # a GPU
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocls.data import make_splits  # noqa: E402
from autocls.data.registry import RawDataset, load_dataset  # noqa: E402
from autocls.models import create_model  # noqa: E402
from autocls.training import Runtime, TrainConfig, train  # noqa: E402
from _shared_data import cifar10_jpg_folder  # noqa: E402

def load_cifar_jpgs(per_class: int) -> RawDataset:
    return load_dataset(str(cifar10_jpg_folder(per_class)))


class CifarStyleDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per sample: ndarray -> PIL image -> transforms."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_loop(model, images, labels, mean, std, batch_size, steps, device, amp, channels_last) -> float:
    import torchvision.transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                           T.ToTensor(), T.Normalize(mean, std)])
    dataset = CifarStyleDataset(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), transform)
    workers = os.cpu_count() or 1
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    done, start, seen = 0, None, 0
    while done < steps + 1:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == 1:  # the first step pays for worker start-up; time the rest
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            else:
                seen += len(y)
            if done == steps + 1:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def flops_per_image(model, shape, device, amp) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(8, *shape, device=device)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x).sum().backward()
    return counter.get_total_flops() / 8


def matmul_ceiling(device, amp, n: int = 2048, repeats: int = 10) -> float:
    dtype = torch.bfloat16 if amp else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--per-class", type=int, default=2000, help="CIFAR-10 training images per class to load")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    channels_last = device.type == "cuda"

    raw = load_cifar_jpgs(args.per_class)
    data = make_splits(raw, val_fraction=0.02, test_fraction=0.02)
    n = args.steps * args.batch_size
    if len(data.train_y) < n:
        sys.exit(f"need {n} training images for {args.steps} steps; raise --per-class")
    # autocls: one epoch over exactly `steps` batches; the trainer times the training steps alone
    cfg = TrainConfig(model=args.model, epochs=1, batch_size=args.batch_size, lr=0.05,
                      crop_padding=4, flip=True, scheduler="constant", amp=args.amp, channels_last=channels_last)
    runtime = Runtime(dataset=data.name, device=str(device))
    data.train_x, data.train_y = data.train_x[:n], data.train_y[:n]
    train(cfg, data, runtime=runtime)  # warm-up: allocator, kernels
    ours = train(cfg, data, runtime=runtime).history[0]["images_per_s"]

    torch.manual_seed(0)
    model = create_model(args.model, data.num_classes).to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    theirs = reference_loop(model, data.train_x, data.train_y, data.mean, data.std, args.batch_size, args.steps,
                            device, args.amp, channels_last)

    fpi = flops_per_image(model, data.image_shape, device, args.amp)
    ceiling = matmul_ceiling(device, args.amp)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else os.cpu_count()} "
          f"{'GPU' if device.type == 'cuda' else 'cores'}), model {args.model}, batch {args.batch_size}, "
          f"{args.steps} steps, {'bf16' if args.amp else 'fp32'}")
    print(f"autocls trainer:        {ours:10,.0f} img/s")
    print(f"DataLoader + PIL loop:  {theirs:10,.0f} img/s   (num_workers={os.cpu_count()})")
    print(f"ratio autocls / reference: {ours / theirs:.2f}x")
    print(f"model: {fpi / 1e6:.1f} MFLOP per image (fwd+bwd); autocls achieves {ours * fpi / 1e9:.1f} GFLOP/s = "
          f"{ours * fpi / ceiling:.1%} of the measured {ceiling / 1e9:.0f} GFLOP/s matmul ceiling")


if __name__ == "__main__":
    main()
