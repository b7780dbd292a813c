"""The training split served as augmented batches from the device it lives on.

As airbench's ``CifarLoader``: the uint8 images go to the device once; an
epoch is one permutation (or one class-balanced draw) and then slices of it,
each augmented as a whole batch.  No DataLoader, no worker processes, no
per-sample Python between optimizer steps.  On a small training split an
epoch may be several passes (:func:`passes_per_epoch`).
"""
from __future__ import annotations

import torch

from autocls.data.augment import BatchAugment


# The most passes an epoch makes over a small split.  On 500 CIFAR-10 photos (50 a class), 24 epochs of the
# cpu-small seed recipe scored 49.0% on 5,000 held-out photos at 90 passes an epoch (45,000 images), 49.4% at 30
# in 0.40x the time, and 46.5% at 10 (benchmarks/seed_recipes.py, 2026-12-02): past ~30 passes a small folder
# learns nothing more, and without a cap a folder of 40 images was passed over 1,125 times an epoch.
MAX_PASSES_PER_EPOCH = 30


def passes_per_epoch(n_images: int, epoch_images: int) -> int:
    """Passes over ``n_images`` that make an epoch of about ``epoch_images`` images (0: one pass), at most
    :data:`MAX_PASSES_PER_EPOCH`.

    A space's epochs, ASHA rungs and per-epoch evaluations are written for its
    dataset's size: on CIFAR-10's 5,000-image subset, its 16 one-pass epochs
    trained 80,000 images in all and spent 40% of the time evaluating.

    Example:
        >>> passes_per_epoch(5_000, 45_000), passes_per_epoch(40_000, 45_000), passes_per_epoch(5_000, 0)
        (9, 1, 1)
        >>> passes_per_epoch(40, 45_000)
        30
    """
    if not (epoch_images and n_images):
        return 1
    return min(MAX_PASSES_PER_EPOCH, max(1, round(epoch_images / n_images)))


def steps_per_epoch(n_images: int, batch_size: int, epoch_images: int = 0) -> int:
    """The training steps an epoch of ``n_images`` makes at ``batch_size``: a :class:`DeviceLoader`'s length (its
    batches are all full, and no larger than the split).

    Example:
        >>> steps_per_epoch(432, 128), steps_per_epoch(432, 1024), steps_per_epoch(5_000, 512, epoch_images=45_000)
        (3, 1, 87)
    """
    return n_images * passes_per_epoch(n_images, epoch_images) // max(1, min(batch_size, n_images - n_images % 2))


class DeviceLoader:
    """``for x, y in loader``: normalised, augmented float batches and int64 labels on ``device``.

    ``images`` may live on the training device or, when they do not fit there,
    in pinned host memory: each batch is then sliced on the host and copied.
    Batches are all full (``drop_last``), so every step sees ``batch_size`` images.

    Example:
        >>> from autocls.data import load_dataset, make_splits
        >>> data = make_splits(load_dataset("digits"), val_fraction=0.1, seed=0)
        >>> loader = DeviceLoader(data.train_x, data.train_y, 128, BatchAugment(data.mean, data.std, 4, True),
        ...                       torch.device("cpu"))
        >>> x, y = next(iter(loader))
        >>> x.shape, x.dtype, y.shape
        (torch.Size([128, 1, 8, 8]), torch.float32, torch.Size([128]))
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, augment: BatchAugment,
                 device: torch.device, balanced: bool = False, passes: int = 1):
        self.images, self.labels = images, labels.to(images.device)
        self.augment, self.device, self.passes = augment, device, passes
        n = len(labels)
        self.batch_size = min(batch_size, n - n % 2)  # timm's Mixup needs an even batch
        counts = torch.bincount(labels)
        # class-balanced sampling draws with replacement, each class equally often
        self.sample_weights = (1.0 / counts.float())[labels].to(images.device) if balanced else None

    def __len__(self) -> int:
        return len(self.labels) * self.passes // self.batch_size

    def __iter__(self):
        n = len(self.labels)
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, n * self.passes, replacement=True)
        else:  # each pass its own permutation: every image once per pass
            order = torch.cat([torch.randperm(n, device=self.images.device) for _ in range(self.passes)])
        for step in range(len(self)):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            x = self.images[idx].to(self.device, non_blocking=True)
            yield self.augment(x), self.labels[idx].to(self.device, non_blocking=True)
