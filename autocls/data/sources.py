"""Readers for the built-in datasets, each in its real on-disk format.

CIFAR is read from the official python pickles ourselves rather than through
``torchvision.datasets.CIFAR10``: torchvision refuses any file whose md5 differs
from the release, which rules out small fixture files and partial copies.
Downloads still go through torchvision's own URL, checksum and extractor.
"""
from __future__ import annotations

import hashlib
import pickle
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from autocls.data.registry import RawDataset, register_dataset
from autocls.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _download(url: str, data_dir: Path, filename: str, md5: str | None, what: str) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(url, str(data_dir), filename=filename, md5=md5)
    except Exception as exc:  # URLError, socket timeouts, HTTP errors: all mean "offline" to the user
        raise UserError(
            f"{what} is not in '{data_dir}' and could not be downloaded ({type(exc).__name__}: {exc}); "
            f"put the extracted files there or pass --data-dir"
        ) from None


def _unpickle(path: Path) -> dict:
    # These are the official CIFAR release files, read from the user's own data
    # folder; the format itself is a pickle, so there is no safer reader.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _cifar_arrays(files: list[Path], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for path in files:
        entry = _unpickle(path)
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(entry[label_key])
    return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.int64)


def _ensure_cifar(data_dir: Path, download: bool, tv_class) -> Path:
    folder = data_dir / tv_class.base_folder
    needed = [folder / name for name, _ in tv_class.train_list + tv_class.test_list]
    if not all(p.exists() for p in needed):
        if not download:
            raise UserError(f"{tv_class.__name__} files not found in '{folder}'; pass --data-dir or allow download")
        _download(tv_class.url, data_dir, tv_class.filename, tv_class.tgz_md5, tv_class.__name__)
    return folder


@register_dataset("cifar10")
def load_cifar10(data_dir: Path, download: bool = True) -> RawDataset:
    from torchvision.datasets import CIFAR10

    folder = _ensure_cifar(data_dir, download, CIFAR10)
    x, y = _cifar_arrays([folder / n for n, _ in CIFAR10.train_list], "labels")
    tx, ty = _cifar_arrays([folder / n for n, _ in CIFAR10.test_list], "labels")
    classes = _unpickle(folder / CIFAR10.meta["filename"])["label_names"]
    return RawDataset("cifar10", x, y, list(classes), tx, ty)


def _load_cifar100(data_dir: Path, download: bool, coarse: bool) -> RawDataset:
    from torchvision.datasets import CIFAR100

    folder = _ensure_cifar(data_dir, download, CIFAR100)
    key = "coarse_labels" if coarse else "fine_labels"
    x, y = _cifar_arrays([folder / n for n, _ in CIFAR100.train_list], key)
    tx, ty = _cifar_arrays([folder / n for n, _ in CIFAR100.test_list], key)
    meta = _unpickle(folder / CIFAR100.meta["filename"])
    classes = meta["coarse_label_names" if coarse else "fine_label_names"]
    return RawDataset("cifar100-coarse" if coarse else "cifar100", x, y, list(classes), tx, ty)


@register_dataset("cifar100")
def load_cifar100(data_dir: Path, download: bool = True) -> RawDataset:
    return _load_cifar100(data_dir, download, coarse=False)


@register_dataset("cifar100-coarse")
def load_cifar100_coarse(data_dir: Path, download: bool = True) -> RawDataset:
    return _load_cifar100(data_dir, download, coarse=True)


@register_dataset("digits")
def load_digits(data_dir: Path | None = None, download: bool = True) -> RawDataset:
    """scikit-learn's 8x8 handwritten digits (1,797 real images, shipped offline)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    # Pixels are 0..16; scale to the 0..255 range every other dataset uses.
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawDataset("digits", torch.from_numpy(pixels), torch.from_numpy(bunch.target.astype(np.int64)), [str(c) for c in bunch.target_names])


TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


@register_dataset("tiny-imagenet")
def load_tiny_imagenet(data_dir: Path, download: bool = True) -> RawDataset:
    """Tiny-ImageNet-200: ``train/<wnid>/images/*.JPEG`` and ``val/images`` + ``val_annotations.txt``.

    The official test images carry no labels, so the labelled val set is the
    test split and autocls carves its own val split from train.
    """
    root = data_dir / "tiny-imagenet-200"
    if not (root / "wnids.txt").exists():
        if not download:
            raise UserError(f"Tiny-ImageNet not found in '{root}'; pass --data-dir or allow download")
        _download(TINY_IMAGENET_URL, data_dir, "tiny-imagenet-200.zip", TINY_IMAGENET_MD5, "Tiny-ImageNet")
    wnids = [w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    train_files, train_labels = [], []
    for wnid in wnids:
        files = sorted((root / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise UserError(f"Tiny-ImageNet class folder '{root / 'train' / wnid / 'images'}' has no images")
        train_files += files
        train_labels += [index[wnid]] * len(files)
    val_files, val_labels = [], []
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.exists():
        raise UserError(f"'{annotations}' is missing: the Tiny-ImageNet val labels live there")
    for line in annotations.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            if parts[1] not in index:
                raise UserError(f"{annotations}: class '{parts[1]}' is not in wnids.txt")
            val_files.append(root / "val" / "images" / parts[0])
            val_labels.append(index[parts[1]])
    x, y, _ = _decode_files(train_files, train_labels, (64, 64))
    tx, ty, _ = _decode_files(val_files, val_labels, (64, 64))
    words = {}
    if (root / "words.txt").exists():
        for line in (root / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    return RawDataset("tiny-imagenet", x, y, [words.get(w, w) for w in wnids], tx, ty)


def decode_images(files: list[Path], size: tuple[int, int] | None, channels: int = 3) -> tuple[torch.Tensor, list[int]]:
    """Decode image files to one uint8 ``(N, C, H, W)`` tensor, resized to ``size`` (width, height).

    Returns the tensor and the indices of the files that were read; files that
    are not readable images are left out.
    """
    arrays, read = [], []
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                if size is not None and img.size != size:
                    img = img.resize(size, Image.BILINEAR)
                a = np.asarray(img, dtype=np.uint8)
                arrays.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
                read.append(i)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            continue
    if not arrays:
        width, height = size or (1, 1)
        return torch.empty(0, channels, height, width, dtype=torch.uint8), read
    return torch.from_numpy(np.stack(arrays)), read


def _decode_files(files: list[Path], labels: list[int], size: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Decode to one uint8 RGB tensor; unreadable files are skipped and counted in a warning."""
    x, read = decode_images(files, size)
    skipped = len(files) - len(read)
    if skipped:
        warnings.warn(f"skipped {skipped} file(s) that are not readable images", stacklevel=2)
    return x, torch.tensor([labels[i] for i in read], dtype=torch.int64), skipped


def _common_size(files: list[Path], sample: int = 200) -> tuple[int, int]:
    sizes = Counter()
    for path in files[:: max(1, len(files) // sample)]:
        try:
            with Image.open(path) as img:
                sizes[img.size] += 1
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            continue
    if not sizes:
        raise UserError(f"no readable image among the files under '{files[0].parents[1]}'")
    return sizes.most_common(1)[0][0]


def _folder_cache_key(files: list[Path]) -> str:
    digest = hashlib.sha1()
    for f in files:
        st = f.stat()
        digest.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_image_folder(root: Path, image_size: int | None = None) -> RawDataset:
    """An ImageFolder tree: ``root/<class>/<image>``; one ``train`` level is looked through.

    Images of other sizes are resized to the most common size.  Files that are
    not images are skipped with a warning that counts them.  Decoded pixels are
    cached in ``root/.autocls-cache`` (keyed on names, sizes and mtimes) so the
    next trial does not decode 50,000 JPEGs again.
    """
    root = Path(root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(subdirs) == 1 and subdirs[0].name in {"train", "training"}:
        root, subdirs = subdirs[0], sorted(p for p in subdirs[0].iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise UserError(f"'{root}' has no class folders; expected the layout {root}/<class>/<image>")
    if len(subdirs) < 2:
        raise UserError(f"'{root}' has only one class folder ('{subdirs[0].name}'); a classifier needs at least two")
    files, labels = [], []
    for label, folder in enumerate(subdirs):
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not found:
            raise UserError(f"class folder '{folder}' has no images")
        files += found
        labels += [label] * len(found)
    size = (image_size, image_size) if image_size else _common_size(files)
    cache = root / ".autocls-cache" / f"{_folder_cache_key(files)}-{size[0]}x{size[1]}.npz"
    if cache.exists():
        with np.load(cache) as z:
            x, y = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])
    else:
        x, y, _ = _decode_files(files, labels, size)
        try:
            cache.parent.mkdir(exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, images=x.numpy(), labels=y.numpy())
            tmp.replace(cache)
        except OSError:
            pass  # read-only data folder: decode again next time
    return RawDataset(root.name, x, y, [p.name for p in subdirs])
