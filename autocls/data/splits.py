"""Seeded, stratified train/val/test splits, saved so every trial sees the same one."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autocls.data.augment import shrunk
from autocls.data.registry import RawDataset, load_dataset
from autocls.errors import UserError
from autocls.files import atomic_write_bytes


@dataclass
class DataSplits:
    """Train, val and test tensors (uint8 images, int64 labels) plus normalisation."""

    name: str
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    decoded_shape: tuple[int, int, int] | None = None  # as loaded (``image_size`` may have shrunk the tensors)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The tensors' (channels, height, width)."""
        return tuple(self.train_x.shape[1:])

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """The images' shape as the dataset decodes them: what new files are decoded to for predicting."""
        return self.decoded_shape or self.image_shape


def pixel_digests(images: torch.Tensor) -> list[bytes]:
    """A digest of each image's pixels: equal for images with the same pixels (50,000 CIFAR-10 photos in 0.14 s)."""
    import hashlib

    return [hashlib.blake2b(image, digest_size=16).digest() for image in images.contiguous().numpy()]


def copies(digests: list[bytes]) -> np.ndarray:
    """For each image (by its :func:`pixel_digests`), the index of the first image with the same pixels: its own
    where no earlier one has them.

    A folder often holds one photo twice (``IMG_0042 (1).jpg``, a download saved again, the same picture filed under
    two classes); split apart, a copy of a training image is scored on val or test as an image never seen.

    Example:
        >>> images = torch.tensor([[[[1]]], [[[2]]], [[[1]]], [[[2]]], [[[3]]]], dtype=torch.uint8)
        >>> copies(pixel_digests(images)).tolist()
        [0, 1, 0, 1, 4]
    """
    first = {}
    return np.array([first.setdefault(digest, i) for i, digest in enumerate(digests)], dtype=np.int64)


def stratified_split(labels: np.ndarray, fraction: float, seed: int,
                     groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` with ``fraction`` of each class held out, stratified by class.

    ``groups`` (one id per image, such as :func:`copies`): the images of a group all go to one side, stratified
    by the class of each group's first image; without any group of two, the split is the same as without groups.

    Example:
        >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        >>> keep, held = stratified_split(labels, 0.5, seed=0, groups=np.array([0, 0, 0, 3, 4, 5, 6, 7]))
        >>> keep.tolist(), held.tolist()  # images 0-2 are copies of one: held out together
        ([3, 4, 6], [0, 1, 2, 5, 7])
    """
    if groups is not None:
        _, first, group_of = np.unique(groups, return_index=True, return_inverse=True)
        if len(first) < len(labels):
            keep, held = stratified_split(labels[first], fraction, seed)
            return np.flatnonzero(np.isin(group_of, keep)), np.flatnonzero(np.isin(group_of, held))
    idx = np.arange(len(labels))
    classes = len(np.unique(labels))
    n_held = max(int(round(fraction * len(labels))), classes)  # stratifying needs one per class at least
    if len(labels) - n_held < classes:
        raise UserError(f"{len(labels)} images in {classes} classes are too few to hold out {fraction:.0%} stratified; "
                        f"add images")
    # imported here: trial workers only read splits, and sklearn takes a second to import
    from sklearn.model_selection import train_test_split

    keep, held = train_test_split(idx, test_size=n_held, random_state=seed, stratify=labels)
    return np.sort(keep), np.sort(held)


def channel_stats(images: torch.Tensor,
                  indices: np.ndarray | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (those at ``indices``, else all), in the 0..1 range.

    Summed over 64 MB of float64 at a time: all the images in float64 at once were 8x their own size (twice,
    with the reshape's copy), and splitting 5,000 photos of 256x256 pixels took 13 GB.

    Example:
        >>> images = torch.tensor([[[[0]], [[255]]], [[[255]], [[255]]]], dtype=torch.uint8)  # 2 images, 2 channels
        >>> channel_stats(images)
        ((0.5, 1.0), (0.7071067811865476, 0.001))
    """
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    channels, chunk = images.shape[1], max(1, 2**23 // images[0].numel())
    total, squares = torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(indices), chunk):
        x = images[torch.from_numpy(indices[start:start + chunk])].double().div_(255.0)
        total += x.sum((0, 2, 3))
        squares += x.square_().sum((0, 2, 3))
    n = len(indices) * images[0, 0].numel()
    mean = total / n
    variance = (squares - n * mean.square()) / max(n - 1, 1)  # unbiased, as torch.std
    return tuple(mean.tolist()), tuple(variance.clamp_min(0).sqrt().clamp_min(1e-3).tolist())


def check_splittable(raw: RawDataset) -> None:
    """Refuse data with a class too small for a stratified train / val / test split (one image each at least).

    Called by :func:`make_splits`, and by a search before it writes its study, so that such data leaves nothing
    behind.

    Example:
        >>> import torch
        >>> raw = RawDataset("tiny", torch.zeros(5, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 0, 1, 1]), ["a", "b"])
        >>> check_splittable(raw)
        Traceback (most recent call last):
        ...
        autocls.errors.UserError: tiny: class(es) ['b'] have fewer than 3 images; cannot split train/val/test
    """
    counts = np.bincount(raw.labels.numpy(), minlength=len(raw.classes))
    if (counts < 3).any():
        small = [raw.classes[i] for i in np.flatnonzero(counts < 3)]
        raise UserError(f"{raw.name}: class(es) {small[:5]} have fewer than 3 images; cannot split train/val/test")


IMBALANCED = 10.0
"""Most over least frequent training class from which :func:`class_imbalance` speaks."""


def class_imbalance(raw: RawDataset) -> str | None:
    """``'<commonest class> N images to <rarest> M, N/M:1'`` where N is :data:`IMBALANCED` times M or more, else None.

    A search ranks trials by val top-1, which a rare class never predicted barely lowers, so it says when the
    training images are this uneven (on CIFAR-10-LT at 100:1, the preset's recipe got 0% and 1% of the two rarest
    classes' test images right: ``benchmarks/long_tailed.py``).

    Example:
        >>> import torch
        >>> labels = torch.tensor([0] * 30 + [1] * 12 + [2] * 3)
        >>> class_imbalance(RawDataset("lt", torch.zeros(45, 1, 8, 8, dtype=torch.uint8), labels, ["cat", "dog", "eel"]))
        'cat 30 images to eel 3, 10:1'
        >>> class_imbalance(RawDataset("even", torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 1, 1]),
        ...                            ["cat", "dog"])) is None
        True
    """
    counts = np.bincount(raw.labels.numpy(), minlength=len(raw.classes))
    most, least = int(counts.argmax()), int(counts.argmin())
    if counts[least] == 0 or counts[most] < IMBALANCED * counts[least]:
        return None
    return (f"{raw.classes[most]} {counts[most]} images to {raw.classes[least]} {counts[least]}, "
            f"{counts[most] / counts[least]:.3g}:1")


def _warn_copies(raw: RawDataset, groups: np.ndarray, digests: list[bytes]) -> None:
    """Say how many images are copies of another (``groups``, :func:`copies` of the training images' ``digests``;
    kept on its side of the split), and how many of a training image a dataset's own val or test folder holds
    (which no split can keep apart)."""
    import warnings

    copied = np.flatnonzero(groups != np.arange(len(groups)))
    if len(copied):
        other_class = int((raw.labels.numpy()[copied] != raw.labels.numpy()[groups[copied]]).sum())
        elsewhere = f" ({other_class} of them under another class)" if other_class else ""
        warnings.warn(f"{len(copied)} images have the same pixels as another{elsewhere}: each kept on its copy's side "
                      f"of the train/val/test split", stacklevel=3)
    training = set(digests)
    for name, images in (("val", raw.val_images), ("test", raw.test_images)):
        if images is None:
            continue
        in_train = sum(digest in training for digest in pixel_digests(images))
        if in_train:
            warnings.warn(f"{in_train} of the {len(images)} images of {raw.name}'s own {name} split: the same pixels "
                          f"as a training image (its scores count them as unseen)", stacklevel=3)


def make_splits(raw: RawDataset, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                split_file: str | Path | None = None, image_size: int | None = None) -> DataSplits:
    """Split ``raw`` and compute its train mean/std.

    The official test set is the test split where one exists; otherwise
    ``test_fraction`` of the data is held out, stratified.  Val is the
    dataset's own where it has one, else carved from train.  With
    ``split_file`` the indices and statistics are written once, with a
    fingerprint of the data's content, and read back on every later call, so
    all trials of a study share them even if the data loader's order or
    scikit-learn's RNG were to change; data whose content changed is refused.

    With ``image_size`` (a run's), the splits hold their images shrunk to that side where that shrinks them,
    and ``decoded_shape`` the shape they were loaded at.  The indices, statistics and fingerprint are those of
    the images as loaded.  A trial of the CPU preset trains at 32 px, and its worker held photos of 256 px whole.

    Example:
        >>> from autocls.data import load_dataset
        >>> s = make_splits(load_dataset("digits"), seed=0)
        >>> len(s.train_y) + len(s.val_y) + len(s.test_y)
        1797
        >>> make_splits(load_dataset("digits"), seed=0, image_size=4).train_x.shape[1:]
        torch.Size([1, 4, 4])
    """
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    check_splittable(raw)
    labels = raw.labels.numpy()
    split_file = Path(split_file) if split_file else None
    fingerprint = raw.fingerprint() if split_file else ""
    if split_file and split_file.exists():
        with np.load(split_file) as z:
            pool, test_idx, train_idx, val_idx = (z[k] for k in ("pool", "test", "train", "val"))
            stats = json.loads(str(z["stats"]))
            saved = str(z["fingerprint"]) if "fingerprint" in z else None
        if saved != fingerprint:
            raise UserError(f"split file '{split_file}' was made for other contents of {raw.name} (files or labels "
                            f"changed, or an older autocls decoded them: since 2026-12-05 photos are turned upright by "
                            f"their EXIF orientation and transparent pixels laid on white); use another --study, or "
                            f"delete the file to re-split")
    else:
        digests = pixel_digests(raw.images)
        groups = copies(digests)
        _warn_copies(raw, groups, digests)
        if raw.test_images is not None:
            pool, test_idx = np.arange(len(labels)), np.empty(0, dtype=np.int64)
        else:
            pool, test_idx = stratified_split(labels, test_fraction, seed, groups)
        if raw.val_images is not None:
            train_idx, val_idx = pool, np.empty(0, dtype=np.int64)
        else:
            tr, va = stratified_split(labels[pool], val_fraction, seed, groups[pool])
            train_idx, val_idx = pool[tr], pool[va]
        mean, std = channel_stats(raw.images, train_idx)
        stats = {"mean": mean, "std": std}
        if split_file:
            split_file.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.savez(buffer, pool=pool, test=test_idx, train=train_idx, val=val_idx, n=len(labels),
                     stats=json.dumps(stats), fingerprint=fingerprint)
            atomic_write_bytes(split_file, buffer.getvalue())  # a crash never leaves half a split file
    t = torch.from_numpy
    images = shrunk(raw.images, image_size)  # before the split's copies, which are then of the small images
    if raw.test_images is not None:
        test_x, test_y = shrunk(raw.test_images, image_size), raw.test_labels
    else:
        test_x, test_y = images[t(test_idx)], raw.labels[t(test_idx)]
    if raw.val_images is not None:
        val_x, val_y = shrunk(raw.val_images, image_size), raw.val_labels
    else:
        val_x, val_y = images[t(val_idx)], raw.labels[t(val_idx)]
    return DataSplits(
        name=raw.name, classes=raw.classes,
        train_x=images[t(train_idx)], train_y=raw.labels[t(train_idx)],
        val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
        mean=tuple(stats["mean"]), std=tuple(stats["std"]),
        decoded_shape=tuple(raw.images.shape[1:]),
    )


def prepare_data(dataset: str, data_dir: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
                 split_file: str | Path | None = None, image_size: int | None = None) -> DataSplits:
    """Load a dataset by name or folder and split it (see :func:`make_splits`)."""
    return make_splits(load_dataset(dataset, data_dir), val_fraction=val_fraction, seed=seed, split_file=split_file,
                       image_size=image_size)
