"""The real CIFAR-10 JPEGs from ``../shared/data`` for the benchmarks (see its README)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpg.tar.gz"


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
