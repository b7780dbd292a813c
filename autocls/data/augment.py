"""Augmentation of whole batches on the training device.

Per-sample crops, flips and cutout are written here as tensor indexing because
the library versions work per image (torchvision) or re-draw parameters in
Python per sample (kornia), and a trial that trains at 50k img/s cannot afford
either.  The AutoAugment family is in ``policies`` (per image, batched) and
mixup / cutmix come from timm.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .policies import POLICIES, create_policy

AUTO_AUGMENT_POLICIES = ("none",) + POLICIES


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Random crop of each image after reflect-padding by ``padding`` pixels."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of a random half of the batch."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(-1), x)


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at a random centre of each image (DeVries & Taylor 2017)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    half = size // 2
    hole = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
    return x * (~hole)[:, None].to(x.dtype)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """A batch of images resized to ``size`` x ``size``, antialiased when shrinking; uint8 stays uint8.

    One function for every place a run resizes (its split once, each batch,
    predict), so that all of them give the same pixels.

    Example:
        >>> resize(torch.zeros(2, 3, 256, 341, dtype=torch.uint8), 32).shape
        torch.Size([2, 3, 32, 32])
    """
    if tuple(x.shape[-2:]) == (size, size):
        return x
    shrink = size < max(x.shape[-2:])
    if x.dtype == torch.uint8 and x.device.type == "cpu":  # torch resizes uint8 itself only on CPU
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=shrink, align_corners=False)
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=shrink, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else out


def shrunk(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """``images`` at ``size`` (a run's ``image_size``) where that shrinks them, in chunks; else as they are.

    A run shrinks its training and val images once rather than in every batch: 512 photos of 256 px took
    0.1 s a batch on 2 cores.  Each batch's :meth:`BatchAugment.normalize` then finds them at that size.

    Example:
        >>> shrunk(torch.zeros(3, 3, 64, 64, dtype=torch.uint8), 32).shape, shrunk(torch.zeros(3, 3, 8, 8), 32).shape
        (torch.Size([3, 3, 32, 32]), torch.Size([3, 3, 8, 8]))
    """
    if not size or size >= max(images.shape[-2:]) or not len(images):
        return images
    # 64 MB of pixels a chunk: the resize copies its input (1,024 photos of 256 px were 200 MB), while images mapped
    # from the cache are not in the process's own memory at all.  Not less: buffers over glibc's 32 MB threshold go
    # back to the OS when freed, smaller ones stayed in its heap (in a test, 32 MB chunks left 1.4x its pixels held)
    return torch.cat([resize(chunk, size) for chunk in images.split(max(1, 2**26 // images[0].numel()))])


class BatchAugment:
    """uint8 batch in, normalised float batch out, every step on the batch's device.

    Example:
        >>> aug = BatchAugment(mean=(0.5,), std=(0.25,), crop_padding=2, flip=True, cutout=4)
        >>> aug(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)).shape
        torch.Size([8, 1, 8, 8])
    """

    def __init__(self, mean, std, crop_padding: int = 0, flip: bool = False, cutout: int = 0,
                 auto_augment: str = "none", magnitude: int = 9, image_size: int | None = None):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.crop_padding, self.flip, self.cutout_size = crop_padding, flip, cutout
        self.policy = create_policy(auto_augment, magnitude)  # each image draws its own ops
        self.image_size = image_size

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float, resized if asked (:func:`resize`), standardised with the dataset's mean/std."""
        if self.image_size:
            x = resize(x, self.image_size)
        x = x.float().div_(255.0)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x - mean) / std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.policy is not None:
            x = self.policy(x)
        x = self.normalize(x)
        if self.crop_padding:
            x = random_crop(x, self.crop_padding)
        if self.flip:
            x = random_flip(x)
        if self.cutout_size:
            x = cutout(x, self.cutout_size)
        return x
