"""The real CIFAR-10 JPEGs from ``../shared/data`` for the benchmarks (see its README), or from ``shared/data``
in the checkout, where ``benchmarks/gpu_bundle.sh`` copies them for a machine that only the checkout reaches."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

_ARCHIVE = Path("shared") / "data" / "cifar10-train-jpg.tar.gz"
SHARED = next((root / _ARCHIVE for root in Path(__file__).resolve().parents[1:3] if (root / _ARCHIVE).exists()),
              Path(__file__).resolve().parents[2] / _ARCHIVE)


def cifar10_jpg_folder(per_class: int, work: Path | None = None) -> Path:
    """Extract the archive and keep the first ``per_class`` images of each class; the ImageFolder root."""
    if not SHARED.exists():
        sys.exit(f"{SHARED} not found: this benchmark needs the real CIFAR-10 JPEGs")
    work = work or Path(tempfile.mkdtemp(prefix="autocls-bench-"))
    subprocess.run(["tar", "-xzf", str(SHARED), "-C", str(work)], check=True)
    for folder in (work / "train").iterdir():
        for f in sorted(folder.iterdir())[per_class:]:
            f.unlink()
    return work / "train"


def split_folders(train: Path, root: Path, val: int = 500, test: int = 500, seed: int = 0) -> Path:
    """``root/{train,val,test}/<class>/`` as hard links: per class, ``val`` and ``test`` images held out."""
    rng = random.Random(seed)
    for folder in sorted(train.iterdir()):
        files = sorted(folder.iterdir())
        rng.shuffle(files)
        parts = {"test": files[:test], "val": files[test:test + val], "train": files[test + val:]}
        for part, chosen in parts.items():
            dest = root / part / folder.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                os.link(f, dest / f.name)
    return root


def split_cifar10(work: Path, train_per_class: int = 4000) -> Path:
    """The shared photos under ``work``, split stratified and seeded: 500 val and 500 test images per class, and
    ``train_per_class`` training images (all the rest by default: 40k / 5k / 5k)."""
    (work / "jpg").mkdir(parents=True, exist_ok=True)
    return split_folders(cifar10_jpg_folder(1000 + train_per_class, work / "jpg"), work / "cifar10")
