"""Readers for the built-in datasets, each in its real on-disk format.

CIFAR is read from the official python pickles ourselves rather than through
``torchvision.datasets.CIFAR10``: torchvision refuses any file whose md5 differs
from the release, which rules out small fixture files and partial copies.
Downloads still go through torchvision's own URL, checksum and extractor.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from autocls.data.registry import RawDataset, register_dataset
from autocls.errors import UserError

# HEIC is an iPhone's default photo format; Pillow reads it through pillow-heif's opener (and AVIF on its own).
# Without them a folder of iPhone photos was passed over in silence: "class folder ... has no images".
register_heif_opener()
# Named by extension, as torchvision's ImageFolder does, so a folder's notes and metadata are not "unreadable
# images"; with the names Windows (.jfif, a browser's "save image as") and older cameras (.jpe) give JPEGs.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".apng", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pbm", ".pnm", ".jp2", ".heic", ".heif", ".avif"}


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


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what the official CIFAR pickles hold: dicts, lists, strings, numbers and numpy arrays.

    The CIFAR release is a pickle by format; a file in its place that names
    any other callable (``os.system``, ...) is refused instead of run.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR file")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"'{path}' is not an official CIFAR file ({exc}); delete it to download it again") from None


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


# 8x8 and not mirror-symmetric; batches of at most 128 whatever a model's recipe says, as 1,293 training images make
# 5 steps an epoch at airbench's 256 (`autocls train digits --model airbench --epochs 4`: 89.97% test at 256, 99.16%
# at 128)
DIGITS_RECIPE = {"crop_padding": 1, "flip": False, "batch_size": 128}


@register_dataset("digits", recipe=DIGITS_RECIPE)
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
    x, y = _cached_decode(train_files, train_labels, (64, 64))  # 100,000 JPEGs: decoded once, not in every trial
    tx, ty = _cached_decode(val_files, val_labels, (64, 64))
    words = {}
    if (root / "words.txt").exists():
        for line in (root / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    return RawDataset("tiny-imagenet", x, y, [words.get(w, w) for w in wnids], tx, ty)


# What opening or decoding a file that is not a usable image raises
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
              Image.DecompressionBombWarning)


def _to_8bit(img: Image.Image) -> Image.Image:
    """16- and 32-bit integer images scaled to 8 bits (Pillow's convert() clips them at 255 instead)."""
    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return img
    a = np.asarray(img)
    top = 65535 if a.max(initial=0) <= 65535 and a.min(initial=0) >= 0 else float(a.max(initial=1))
    return Image.fromarray(np.round(a.astype(np.float64) * (255.0 / top)).astype(np.uint8), mode="L")


# EXIF orientations 5-8 turn a photo a quarter: upright, its width is the stored height
QUARTER_TURNS = (5, 6, 7, 8)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1, upright, where it has none).

    A phone stores a photo as its sensor lay and says in this tag how to turn it for viewing: a portrait photo of a
    flower is stored on its side.  Pillow (and so torchvision's and timm's loaders) decodes the stored pixels as they
    lie; autocls turns them upright, so that every photo of a folder, and one given to ``predict``, is seen as its
    owner sees it, whichever way the phone was held.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's "Corrupt EXIF data", once per photo of an odd camera
            return int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a malformed EXIF block (a camera's, an editor's) says nothing of orientation: the pixels do
        return 1


def upright_size(img: Image.Image) -> tuple[int, int]:
    """The (width, height) of an opened image as it is viewed, its EXIF orientation applied."""
    width, height = img.size
    return (height, width) if exif_orientation(img) in QUARTER_TURNS else (width, height)


# Transparent pixels are laid on white, as a browser or file viewer shows them on a light page: the colour stored
# under them is whatever the drawing tool left (black from one, the erased photo from another), and dropping the
# alpha channel, as torchvision's and timm's loaders do, showed it.
TRANSPARENT_BACKGROUND = (255, 255, 255)


def on_background(img: Image.Image) -> Image.Image:
    """An opened image with its transparent pixels laid on :data:`TRANSPARENT_BACKGROUND` (itself, where it has
    none): an alpha channel (RGBA, LA, PA) or a transparent colour (a GIF's or PNG's palette index).

    Example:
        >>> from PIL import Image
        >>> on_background(Image.new("RGBA", (1, 1), (0, 0, 0, 0))).convert("RGB").getpixel((0, 0))
        (255, 255, 255)
    """
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in img.info:
        return img
    return Image.alpha_composite(Image.new("RGBA", img.size, (*TRANSPARENT_BACKGROUND, 255)), img.convert("RGBA"))


def decode_images(files: list[Path], size: tuple[int, int] | None, channels: int = 3) -> tuple[torch.Tensor, list[int]]:
    """Decode image files to one uint8 ``(N, C, H, W)`` tensor, upright (:func:`exif_orientation`), transparent
    pixels on white (:func:`on_background`), resized to ``size`` (width, height).

    Returns the tensor and the indices of the files that were read; files that
    are not readable images are left out.
    """
    pixels, read = None, []
    for i, path in enumerate(files):
        try:
            with warnings.catch_warnings(), Image.open(path) as img:
                # Past Pillow's pixel limit an image is a decompression bomb: skip it, don't decode it
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                orientation = exif_orientation(img)
                if size is not None:  # a JPEG decodes at the smallest DCT scale still above size: 8x faster from 12 MP
                    img.draft("L" if channels == 1 else "RGB", size[::-1] if orientation in QUARTER_TURNS else size)
                if orientation != 1:
                    img = ImageOps.exif_transpose(img)
                img = on_background(_to_8bit(img)).convert("L" if channels == 1 else "RGB")
                if size is not None and img.size != size:
                    img = img.resize(size, Image.BILINEAR)
                a = np.asarray(img, dtype=np.uint8)
        except UNREADABLE:
            continue
        a = a[None] if channels == 1 else a.transpose(2, 0, 1)
        if pixels is None:  # filled in place: a list of the images and its stack held the pixels twice
            pixels = np.empty((len(files) - i, *a.shape), dtype=np.uint8)
        pixels[len(read)] = a
        read.append(i)
    if pixels is None:
        width, height = size or (1, 1)
        return torch.empty(0, channels, height, width, dtype=torch.uint8), read
    return torch.from_numpy(pixels[:len(read)]), read


def skipped_files_notice(skipped: list, shown: int = 3) -> str:
    """One line naming the files that are not readable images (the first ``shown`` of them), for a warning.

    Example:
        >>> skipped_files_notice(["a/1.jpg", "a/2.jpg", "b/3.png", "b/4.png"])
        'skipped 4 files that are not readable images: a/1.jpg, a/2.jpg, b/3.png and 1 more'
    """
    names = ", ".join(str(f) for f in skipped[:shown])
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    if len(skipped) == 1:
        return f"skipped 1 file that is not a readable image: {names}"
    return f"skipped {len(skipped)} files that are not readable images: {names}{more}"


def _warn_skipped(files: list[Path], read: list[int]) -> None:
    if len(read) < len(files):
        kept = set(read)
        warnings.warn(skipped_files_notice([f for i, f in enumerate(files) if i not in kept]), stacklevel=3)


def _decode_files(files: list[Path], labels: list[int], size: tuple[int, int] | None,
                  channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode to one uint8 tensor of ``channels``; unreadable files are skipped and named in a warning."""
    x, read = decode_images(files, size, channels)
    _warn_skipped(files, read)
    return x, torch.tensor([labels[i] for i in read], dtype=torch.int64)


# Pillow's modes of images without colour: a folder of only these decodes to one channel (three equal ones would
# hold the same pixels three times, and leave a whitening layer two directions without variance)
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _common_format(files: list[Path], sample: int = 200) -> tuple[tuple[int, int], int]:
    """The most common size (width, height) among a sample of ``files``, capped (:func:`_capped`), and the channels
    to decode them to: 1 where every sampled image is grayscale, else 3."""
    sizes, gray = Counter(), True
    for path in files[:: max(1, len(files) // sample)]:
        try:
            with warnings.catch_warnings(), Image.open(path) as img:
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                sizes[upright_size(img)] += 1
                gray = gray and img.mode in GRAY_MODES
        except UNREADABLE:
            continue
    if not sizes:
        raise UserError(f"no readable image among the files under '{files[0].parents[1]}'")
    return _capped(sizes.most_common(1)[0][0]), 1 if gray else 3


# Photos are kept with their shorter side at most this, as torchvision's ImageNet recipe resizes them before its
# 224-pixel crops: 10,000 12-megapixel photos would be 360 GB of pixels in memory, at 256 px 2.6 GB.
MAX_SHORT_SIDE = 256


def _capped(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` (width, height) scaled down to a shorter side of :data:`MAX_SHORT_SIDE`, where it is longer.

    Example:
        >>> _capped((4032, 3024)), _capped((32, 32))
        ((341, 256), (32, 32))
    """
    scale = MAX_SHORT_SIDE / min(size)
    return size if scale >= 1 else (round(size[0] * scale), round(size[1] * scale))


def _folder_cache_key(files: list[Path], labels: list[int], size: tuple[int, int], channels: int) -> str:
    """Names, sizes, mtimes and labels of the files, and the decode size and channels: a new key whenever any
    changes."""
    # abspath, not resolve(): resolving every file's links took 3 of the 5.7 s it takes to load 50,000
    # cached CIFAR photos, at every search start, trial worker and ensemble (the same folder reached through
    # two links merely decodes twice)
    digest = hashlib.sha1()
    for f, label in zip(files, labels):
        st = f.stat()
        digest.update(f"{os.path.abspath(f)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    # "upright": entries decoded before photos were turned by their EXIF orientation are not used; "on white":
    # nor those decoded before transparent pixels were laid on white
    digest.update(f"{size} {channels} upright on white".encode())
    return digest.hexdigest()[:24]


def cache_dir() -> Path:
    """Where decoded ImageFolders are cached: ``$AUTOCLS_CACHE``, else ``$XDG_CACHE_HOME/autocls`` or ``~/.cache/autocls``."""
    if os.environ.get("AUTOCLS_CACHE"):
        return Path(os.environ["AUTOCLS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "autocls"


def _cache_limit_bytes() -> int:
    return int(float(os.environ.get("AUTOCLS_CACHE_MAX_GB", "10")) * 2**30)


def _cached_decode(files: list[Path], labels: list[int], size: tuple[int, int],
                   channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode through the user's cache folder, never the dataset's: the data folder is left as it was.

    An entry is a folder of ``images.npy`` and ``labels.npy``, written a chunk of images at a time and read back
    memory-mapped (copy-on-write): a process that shrinks the images to its ``image_size`` or copies its split out
    of them never holds the folder's pixels in its own memory, only in the OS's page cache, which lets them go
    under pressure.  A search on 5,000 photos of 256 px held them whole in its main process and in each trial's
    worker, which train at 32 px.  The cache is bounded (``$AUTOCLS_CACHE_MAX_GB``, default 10): the least
    recently used entries go first.  When it cannot be written, decode into memory.
    """
    entry = cache_dir() / "image-folders" / _folder_cache_key(files, labels, size, channels)
    cached = _read_entry(entry)
    if cached is not None:
        return cached
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    except OSError:
        return _decode_files(files, labels, size, channels)
    kept = None  # the labels of the files read, once they are all decoded
    try:
        read = _decode_to_file(files, size, channels, tmp / "images.npy")
        _warn_skipped(files, read)
        kept = np.array([labels[i] for i in read], dtype=np.int64)
        np.save(tmp / "labels.npy", kept)
        os.rename(tmp, entry)  # atomic: a reader sees a whole entry or none
    except OSError:  # a full disk, or another process cached the same folder first
        cached = _read_entry(entry)
        if cached is None and kept is not None:  # decoded whole and warned: kept, not decoded (and warned) again
            with contextlib.suppress(OSError, ValueError):
                x = torch.from_numpy(np.array(np.load(tmp / "images.npy", mmap_mode="r")[:len(kept)]))
                cached = x, torch.from_numpy(kept)
        shutil.rmtree(tmp, ignore_errors=True)
        return cached if cached is not None else _decode_files(files, labels, size, channels)
    except BaseException:  # Ctrl-C while decoding: no half-written entry left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _evict(entry.parent, _cache_limit_bytes(), keep=entry)
    cached = _read_entry(entry)  # evicted by another process's bound in the meantime: decode into memory
    return cached if cached is not None else _decode_files(files, labels, size, channels)


def _decode_to_file(files: list[Path], size: tuple[int, int], channels: int, path: Path) -> list[int]:
    """Decode ``files`` into the ``.npy`` file ``path`` 64 MB of pixels at a time; returns the indices of those read.

    The file has a row for every file, those read first in order: a reader takes the rows its labels count.
    Written by ``write()``, not through a memory map, so that a full disk is an ``OSError``, not a crash.  Chunks
    over glibc's 32 MB threshold go back to the OS when freed (see :func:`~autocls.data.augment.shrunk`).
    """
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(files), channels, size[1], size[0]))
    offset = rows.offset
    del rows
    chunk, read = max(1, 2**26 // (channels * size[0] * size[1])), []
    with open(path, "r+b") as f:
        f.seek(offset)
        for start in range(0, len(files), chunk):
            x, got = decode_images(files[start:start + chunk], size, channels)
            f.write(x.numpy().data)
            read += [start + i for i in got]
    return read


def _read_entry(entry: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A cache entry's images (memory-mapped) and labels, or None where there is none whole; a damaged one is
    deleted."""
    try:
        y = np.load(entry / "labels.npy")
        x = np.load(entry / "images.npy", mmap_mode="c")  # copy-on-write: a tensor over it may still be written
        if x.dtype != np.uint8 or x.ndim != 4 or len(x) < len(y) or y.dtype != np.int64:
            raise ValueError(f"a damaged cache entry: {entry}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        shutil.rmtree(entry, ignore_errors=True)
        return None
    with contextlib.suppress(OSError):  # a cache the user may only read (a cluster's shared one) is still read
        os.utime(entry)  # recently used
    return torch.from_numpy(x[:len(y)]), torch.from_numpy(y)


def _entry_bytes(entry: Path) -> int:
    return sum(p.stat().st_size for p in entry.iterdir()) if entry.is_dir() else entry.stat().st_size


def _evict(folder: Path, limit: int, keep: Path) -> None:
    """The least recently used entries deleted until ``folder`` holds at most ``limit`` bytes (``keep`` stays).

    Entries in use elsewhere stay readable where they are mapped (POSIX): their files go when unmapped.  An entry
    being written is a dot folder; one a day old was left by a killed process, and goes.  So does every entry an
    earlier autocls wrote as one ``.npz``: this one never reads them.
    """
    entries, total = [], 0
    for p in folder.iterdir():
        try:  # one deleted meanwhile by another process is not counted
            if p.suffix == ".npz":
                p.unlink(missing_ok=True)
            elif p.name.startswith(".") and p.stat().st_mtime < time.time() - 86400:
                shutil.rmtree(p, ignore_errors=True)
            elif not p.name.startswith("."):
                size = _entry_bytes(p)
                total += size
                if p != keep:
                    entries.append((p.stat().st_mtime, size, p))
        except OSError:
            continue
    for _, size, p in sorted(entries):
        if total <= limit:
            break
        total -= size
        shutil.rmtree(p, ignore_errors=True)


# A folder that is no dataset's class: a zip made on a Mac keeps each file's metadata in __MACOSX/ beside the data
NOT_CLASSES = ("__MACOSX",)


def _class_folders(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and p.name not in NOT_CLASSES)
    except OSError as exc:
        raise UserError(f"cannot read dataset folder '{root}': {exc.strerror or exc}") from None


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` at any depth, sorted, but hidden ones and those in hidden folders.

    A Mac writes ``._<name>`` beside each file it copies to a USB drive or a network share (AppleDouble metadata,
    not an image, with the photo's extension): a folder of 1,000 photos skipped 1,000 such files in a warning.
    Linked folders are followed, as torchvision's ImageFolder follows them (a class made of links to other
    folders was "a class folder with no images"), each real folder once: a link back up the tree ends there.

    Example:
        >>> image_files(Path("no/such/folder"))
        []
    """
    found, walked = [], set()
    for parent, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(parent)
        if real in walked:  # a link back up the tree, or a second link to one folder
            folders[:] = []
            continue
        walked.add(real)
        folders[:] = [f for f in folders if not f.startswith(".")]
        found += [p for name in names if not name.startswith(".") and os.path.splitext(name)[1].lower()
                  in IMAGE_EXTENSIONS and (p := Path(parent, name)).is_file()]
    return sorted(found)


def _list_images(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        try:
            found = image_files(folder)
        except OSError as exc:
            raise UserError(f"cannot read class folder '{folder}': {exc.strerror or exc}") from None
        files += found
        labels += [label] * len(found)
    return files, labels


SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}


def load_image_folder(root: Path, image_size: int | None = None) -> RawDataset:
    """An ImageFolder tree: ``root/<class>/<image>``, or ``root/{train,val,test}/<class>/<image>``.

    With ``train/`` and either or both of ``val/`` and ``test/`` (and no other
    folder), those are the splits; a lone folder (``train/``, or the folder an
    archive unpacked to, ``flowers/flowers/``) is looked through, and a
    ``val/`` or ``test/`` without class folders (unlabeled) is left out with a
    warning; a Mac's ``__MACOSX/`` is no class.  Images of other sizes
    are resized to the most common size, its shorter side at most
    :data:`MAX_SHORT_SIDE`: squashed, as photos of the other orientation
    lost nothing by it where a centre crop or padding lost points
    (``benchmarks/aspect_ratio.py``); a folder of grayscale images (every one of
    200 spread over it) decodes to one channel, others to RGB.  Files that are
    not images (or are decompression bombs) are skipped with a warning that
    names them.  Decoded
    pixels are cached under :func:`cache_dir`, never in the dataset folder.
    """
    given = root = Path(root)
    subdirs = _class_folders(root)
    # a lone folder level, train/ or an archive's flowers/flowers/, is looked through
    while len(subdirs) == 1 and (inner := _class_folders(subdirs[0])):
        root, subdirs = subdirs[0], inner
    found = {split: next((d for d in subdirs if d.name.lower() in names), None) for split, names in SPLIT_FOLDERS.items()}
    if root != given and not any(found.values()):
        # said, as the folder may be one class of the user's (photos/cats/{2019,2020}): trained as its subfolders
        shown = ", ".join(d.name for d in subdirs[:5]) + (f" and {len(subdirs) - 5} more" if len(subdirs) > 5 else "")
        warnings.warn(f"'{given}' holds one folder, '{root.relative_to(given)}': its {len(subdirs)} folders are the "
                      f"classes ({shown})", stacklevel=2)
    # train/ and nothing beside it but val/ or test/: the splits, not three classes (PyTorch's ants-and-bees
    # tutorial data, train/ and val/, was a classifier of "train" against "val")
    split_layout = found["train"] is not None and len(subdirs) == sum(d is not None for d in found.values())
    for split in ("val", "test") if split_layout else ():
        if found[split] is not None and not _class_folders(found[split]):
            warnings.warn(f"'{found[split]}' has no class folders, so its images have no labels: left out (predict "
                          f"them with `autocls predict`)", stacklevel=2)  # a Kaggle competition's test/
            found[split] = None
    train_root = found["train"] if split_layout else root
    subdirs = _class_folders(train_root) if split_layout else subdirs
    if not subdirs:
        raise UserError(f"'{train_root}' has no class folders; expected the layout {train_root}/<class>/<image>")
    if len(subdirs) < 2:
        raise UserError(f"'{train_root}' has only one class folder ('{subdirs[0].name}'); a classifier needs at least two")
    classes = [p.name for p in subdirs]
    splits = {}
    for split in ("train", "val", "test") if split_layout else ("train",):
        if split != "train" and found[split] is None:
            continue
        split_root = found[split] if split_layout else root
        extra = sorted({p.name for p in _class_folders(split_root)} - set(classes))
        if extra:
            raise UserError(f"'{split_root}' has class folder(s) {extra[:5]} that '{train_root}' lacks")
        files, labels = _list_images(split_root, classes)
        if split == "train":
            empty = [c for i, c in enumerate(classes) if i not in set(labels)]
            if empty:
                raise UserError(f"class folder '{train_root / empty[0]}' has no images")
        elif not files:
            raise UserError(f"'{split_root}' has no images")
        splits[split] = (files, labels)
    size, channels = _common_format(splits["train"][0])
    size = (image_size, image_size) if image_size else size
    decoded = {split: _cached_decode(files, labels, size, channels) for split, (files, labels) in splits.items()}
    x, y = decoded["train"]
    val, test = decoded.get("val", (None, None)), decoded.get("test", (None, None))
    name = given.name
    return RawDataset(name, x, y, classes, test[0], test[1], val[0], val[1])
