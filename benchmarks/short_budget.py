"""How much of a short ``--time-budget`` a search uses on a small folder of mixed photos, and how many trials it runs.

The folder is a new user's kind: the first 60 shared CIFAR-10 photos of three classes, some grey, some RGBA, a third
resized to 48x40, saved as PNG, JPEG and BMP, and one broken JPEG.  ``autocls search <folder> --time-budget B``
runs on it as a user runs it (its preset, its ensemble); the script prints the command's wall time, its trials and
when the last one ended.  To measure other code beside this, run it with ``PYTHONPATH`` set to that checkout (the
search runs as ``python -m autocls`` of whichever autocls ``python`` imports)::

    python benchmarks/short_budget.py --budget 1m
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared_data import cifar10_jpg_folder  # noqa: E402

CLASSES = ("cat", "dog", "ship")


def mixed_folder(root: Path, per_class: int = 60) -> Path:
    """``root/data/<class>/``: ``per_class`` photos of each of :data:`CLASSES` in mixed modes, sizes and types."""
    (root / "jpg").mkdir(parents=True)
    photos = cifar10_jpg_folder(per_class, root / "jpg")
    data = root / "data"
    for name in CLASSES:
        (data / name).mkdir(parents=True)
        for i, path in enumerate(sorted((photos / name).iterdir())):
            image = Image.open(path)
            image = image.convert("L") if i % 5 == 0 else image.convert("RGBA") if i % 7 == 0 else image
            image = image.resize((48, 40)) if i % 3 == 0 else image
            suffix = (".png", ".jpg", ".JPEG", ".bmp")[i % 4]
            if suffix in (".jpg", ".JPEG") and image.mode == "RGBA":
                image = image.convert("RGB")
            image.save(data / name / f"{i}{suffix}")
    (data / CLASSES[-1] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    shutil.rmtree(root / "jpg")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="1m", help="the search's --time-budget (default 1m)")
    parser.add_argument("--per-class", type=int, default=60, help="photos of each of the three classes (default 60)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="autocls-short-"))
    try:
        folder = mixed_folder(work, args.per_class)
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "autocls", "search", str(folder), "--time-budget", args.budget],
                              cwd=work, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.time() - start
        if proc.returncode != 0:
            sys.exit(f"the search failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
        study = optuna.load_study(study_name="data", storage=f"sqlite:///{work}/studies/data.db")
        trials = [t for t in study.get_trials() if t.datetime_complete is not None]
        ended = max((t.datetime_complete.timestamp() - start for t in trials), default=float("nan"))
        states = ", ".join(f"{sum(t.state.name == s for t in trials)} {s}" for s in ("COMPLETE", "PRUNED", "FAIL"))
        import autocls

        print(f"autocls from {Path(autocls.__file__).parent}; {args.per_class * len(CLASSES)} photos, "
              f"--time-budget {args.budget}")
        print(f"wall {wall:.1f} s; {len(trials)} trials ({states}); the last ended at {ended:.1f} s")
        print(next((line for line in proc.stdout.splitlines() if "ensemble" in line and "%" in line), "no ensemble"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
