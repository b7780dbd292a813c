"""Photos of two orientations in one folder: squashed to the common shape (what autocls does), cropped, or padded.

A folder of phone photos holds landscape and portrait ones; `autocls train ./photos` decodes every image to the
folder's most common size, so the other orientation is resized to it, its aspect ratio lost (squashed).  The
alternatives are torchvision's and timm's evaluation habit, a centre crop to the common aspect ratio
(``PIL.ImageOps.fit``: nothing distorted, a quarter of a 3:4 photo's rows and more cut off), and letterboxing
(``PIL.ImageOps.pad``: nothing distorted or lost, a band of grey).

Real photos of both orientations are built from the shared CIFAR-10 JPEGs: each 32x32 photo is cut to 32x24
(landscape) or, for ``--portrait`` of them (seeded), to 24x32 (portrait), keeping its centre, and saved as PNG.
Per class 500 val and 500 test photos are held out (``train/ val/ test/``, as a user's folder may be laid out).
Then, per mode, the portrait files are rewritten at 32x24 by that mode (``squash`` leaves them as they are:
autocls's own resize does it) and ``autocls train <folder> --model airbench --width W --time-budget B`` runs on the
folder, each mode for the same wall time on this machine's cores.  Printed per mode: top-1 on the whole test split,
on its portrait and on its landscape photos, and each mode's portrait top-1 against ``squash``'s, from this run.

    python benchmarks/aspect_ratio.py                    # 2 minutes a mode (about 8 minutes)
    python benchmarks/aspect_ratio.py --budget 1m --per-class 2000 --modes squash crop
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared_data import cifar10_jpg_folder, split_folders  # noqa: E402

LANDSCAPE, PORTRAIT = (32, 24), (24, 32)  # (width, height)
GREY = (128, 128, 128)
MODES = {
    "squash": None,  # left to autocls: decoded at the common size, the aspect ratio lost
    "crop": lambda img: ImageOps.fit(img, LANDSCAPE, Image.BILINEAR),
    "pad": lambda img: ImageOps.pad(img, LANDSCAPE, Image.BILINEAR, color=GREY),
}


def mixed_orientation_folder(photos: Path, out: Path, portrait: float, seed: int = 0) -> set[str]:
    """``photos/<class>/*.jpg`` cut to landscape or portrait PNGs under ``out/<class>/``; the portrait files' names."""
    rng = random.Random(seed)
    portraits = set()
    for folder in sorted(photos.iterdir()):
        (out / folder.name).mkdir(parents=True)
        for f in sorted(folder.iterdir()):
            with Image.open(f) as img:
                tall = rng.random() < portrait
                w, h = PORTRAIT if tall else LANDSCAPE
                left, top = (img.width - w) // 2, (img.height - h) // 2
                name = f"{folder.name}-{f.stem}.png"
                img.convert("RGB").crop((left, top, left + w, top + h)).save(out / folder.name / name)
            if tall:
                portraits.add(name)
    return portraits


def rewritten(split_root: Path, out: Path, mode: str, portraits: set[str]) -> Path:
    """A copy of ``split_root`` (hard links) whose portrait photos ``mode`` has brought to the landscape size."""
    for f in sorted(split_root.rglob("*.png")):
        dest = out / f.relative_to(split_root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if MODES[mode] is not None and f.name in portraits:
            with Image.open(f) as img:
                MODES[mode](img.convert("RGB")).save(dest)
        else:
            os.link(f, dest)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--budget", default="2m", help="each mode's `autocls train --time-budget`")
    parser.add_argument("--width", default="0.5", help="airbench's width (fixed, so that every mode trains one net)")
    parser.add_argument("--portrait", type=float, default=0.4, help="share of the photos cut to portrait")
    parser.add_argument("--per-class", type=int, default=5000, help="photos of each class (all 5,000 by default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autocls-aspect-") as work:
        work = Path(work)
        env = dict(os.environ, AUTOCLS_CACHE=str(work / "cache"))  # the decoded folders go with the run
        (work / "jpg").mkdir()
        photos = cifar10_jpg_folder(args.per_class, work / "jpg")
        portraits = mixed_orientation_folder(photos, work / "mixed", args.portrait)
        split_root = split_folders(work / "mixed", work / "split")
        test_files = sorted((split_root / "test").rglob("*.png"))  # the order autocls reads test/ in
        tall = np.array([f.name in portraits for f in test_files])
        labels = np.array([f.parent.name for f in test_files])
        print(f"{args.per_class * 10} photos, {len(portraits)} of them portrait (24x32), the rest landscape (32x24); "
              f"test {len(test_files)} ({tall.sum()} portrait); airbench at width {args.width}, {args.budget} a mode",
              flush=True)
        scores = {}
        for mode in args.modes:
            folder = rewritten(split_root, work / mode, mode, portraits)
            run = work / f"run-{mode}"
            subprocess.run([sys.executable, "-m", "autocls", "train", str(folder), "--model", "airbench",
                            "--width", args.width, "--time-budget", args.budget, "--out", str(run)],
                           check=True, capture_output=True, env=env)
            probs = np.load(run / "test_probs.npz")["probs"]
            assert len(probs) == len(test_files), (len(probs), len(test_files))
            classes = sorted(p.name for p in (folder / "train").iterdir())
            right = np.array(classes)[probs.argmax(1)] == labels
            scores[mode] = right[tall].mean()
            print(f"{mode:>7}: test top-1 {right.mean():.2%}, portrait {right[tall].mean():.2%}, "
                  f"landscape {right[~tall].mean():.2%}", flush=True)
        if "squash" in scores:
            for mode in [m for m in args.modes if m != "squash"]:
                print(f"portrait top-1, {mode} - squash: {100 * (scores[mode] - scores['squash']):+.2f} points "
                      f"(standard error of each {100 * np.sqrt(0.25 / tall.sum()):.2f} or less)")


if __name__ == "__main__":
    main()
