"""Datasets by name, the way timm registers models.

A dataset loader is a function ``(data_dir, download) -> RawDataset``.  Any
name that is not registered but is an existing folder is read as an
ImageFolder (``class_name/image.jpg``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from autocls.errors import UserError


@dataclass
class RawDataset:
    """Images as uint8 ``(N, C, H, W)`` tensors, held in memory.

    Holding decoded uint8 pixels (CIFAR-100 train is 150 MB) lets the trainer
    slice batches on the device instead of decoding per sample.
    ``test_images`` is the official test set where the dataset has one, and
    ``val_images`` its own val set (an ImageFolder's ``val/``).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None

    def fingerprint(self) -> str:
        """A hash of every image, label and class name: a split file is valid for this content only."""
        import hashlib

        digest = hashlib.blake2b(digest_size=16)
        digest.update("\0".join(self.classes).encode())
        for t in (self.images, self.labels, self.val_images, self.val_labels, self.test_images, self.test_labels):
            digest.update(b"|" if t is None else t.contiguous().numpy())  # its buffer: tobytes() would copy it
        return digest.hexdigest()

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")


_REGISTRY: dict[str, Callable[[Path, bool], RawDataset]] = {}
_RECIPES: dict[str, dict] = {}


def register_dataset(name: str, recipe: dict | None = None):
    """Decorator adding a loader to the registry.

    ``recipe`` holds the :class:`~autocls.training.TrainConfig` fields that
    this dataset's images need other than the defaults, which are a recipe
    for 32x32 photos (a 4-pixel crop, mirror flips): see :func:`dataset_recipe`.

    Example:
        >>> @register_dataset("my-data", recipe={"flip": False})
        ... def _load(data_dir, download):
        ...     ...
    """

    def wrap(fn):
        _REGISTRY[name] = fn
        _RECIPES[name] = dict(recipe or {})
        return fn

    return wrap


def dataset_recipe(name: str) -> dict:
    """The recipe fields a dataset needs other than the defaults; a run's own settings go on top.

    Example:
        >>> dataset_recipe("digits")  # 8x8 images, and a mirrored 2 is no 2
        {'crop_padding': 1, 'flip': False, 'batch_size': 128}
        >>> dataset_recipe("./my_photos")
        {}
    """
    from autocls.data import sources  # noqa: F401  (registers the built-in loaders)

    return dict(_RECIPES.get(name, {}))


def list_datasets() -> list[str]:
    """Registered dataset names (any folder path is accepted too)."""
    return sorted(_REGISTRY)


def default_data_dir() -> Path:
    return Path(os.environ.get("AUTOCLS_DATA", "data"))


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> RawDataset:
    """Load a registered dataset, or an ImageFolder when ``name`` is a folder path.

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.images.shape[1:], len(ds.classes)
        (torch.Size([1, 8, 8]), 10)
    """
    from autocls.data import sources

    check_dataset(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if name in _REGISTRY:
        return _REGISTRY[name](data_dir, download)
    return sources.load_image_folder(Path(name).expanduser())


def check_dataset(name: str) -> None:
    """Raise :class:`UserError` unless ``name`` is a registered dataset or an existing folder; loads nothing.

    Example:
        >>> check_dataset("cifar11")
        Traceback (most recent call last):
        autocls.errors.UserError: unknown dataset 'cifar11'; known: cifar10, ...
    """
    from autocls.data import sources  # noqa: F401  (registers the built-in loaders)

    path = Path(name).expanduser()
    if name in _REGISTRY or path.is_dir():
        return
    if path.is_file():
        raise UserError(f"'{name}' is a file, not a dataset folder{_unpack_hint(path)} (ImageFolder layout: "
                        f"<folder>/<class>/<image>)")
    looks_like_path = os.sep in name or name.startswith(".")
    if looks_like_path:
        raise UserError(f"dataset folder '{name}' does not exist")
    raise UserError(f"unknown dataset '{name}'; known: {', '.join(list_datasets())}, or a folder path (ImageFolder layout)")


# What a downloaded dataset (Kaggle's are zips; the shared CIFAR-10 JPEGs a .tar.gz) is unpacked with
_UNPACK = {".zip": "unzip {}", ".tar": "tar xf {}", ".tgz": "tar xzf {}", ".gz": "tar xzf {}", ".bz2": "tar xjf {}",
           ".xz": "tar xJf {}", ".7z": "7z x {}", ".rar": "unrar x {}"}


def _unpack_hint(path: Path) -> str:
    """How to unpack ``path``, given where a dataset folder belongs, where it is an archive.

    Example:
        >>> _unpack_hint(Path("flowers.zip")), _unpack_hint(Path("notes.txt"))
        ('; unpack it first (unzip flowers.zip) and give the folder it makes', '')
    """
    command = _UNPACK.get(path.suffix.lower())
    return f"; unpack it first ({command.format(path)}) and give the folder it makes" if command else ""
