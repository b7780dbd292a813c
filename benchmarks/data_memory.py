"""How much memory loading and splitting a folder of photos takes, over the size of its pixels.

The shared CIFAR-10 photos, ``--per-class`` of each class, enlarged to ``--size`` pixels (as a user's own photos
are larger than 32 px), are decoded (no cache), decoded again (from the cache), split as a search splits them
(train mean and std, a split file), and read as a trial's worker reads that split; the last two at the folder's
size and at the CPU preset's 32 px (``image_size``, ``@32``), each in a process of its own.  Printed per step: the
process's peak resident memory, and what it still holds once the step is done, over the pixels' size in memory;
in brackets the process's own (anonymous) part of each: a cache entry is read memory-mapped, and its pixels are
then pages of the OS's file cache, which it drops under pressure and reads again.
A run of the search holds its data in its main process and again in each trial's worker, so each x here is paid
once per process.

    python benchmarks/data_memory.py                      # 500 photos a class at 256 px: 983 MB of pixels

Why: a 2-minute search on 5,000 such photos peaked at 8.5 GB in its main process, and splitting them alone at 13 GB
(the statistics were taken over all the training pixels in float64 at once); 20,000 photos would not have fitted in
this machine's 24 GB.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _shared_data import cifar10_jpg_folder  # noqa: E402

STEP = """
import resource, sys, threading, time
import sklearn.model_selection  # imported by the split, before the baseline
from autocls.data import load_dataset
from autocls.data.splits import make_splits


def resident():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()


def anonymous():  # resident memory that is the process's own, not pages of a file the OS can drop and read again
    line = next(l for l in open("/proc/self/status") if l.startswith("RssAnon:"))
    return int(line.split()[1]) * 1024


top, done = [anonymous()], threading.Event()


def poll():  # no counter keeps the peak of the anonymous part alone
    while not done.wait(0.002):
        top[0] = max(top[0], anonymous())


threading.Thread(target=poll, daemon=True).start()
start, base, base_anon = time.perf_counter(), resident(), anonymous()
raw = load_dataset(sys.argv[1])
pixels = raw.images.nbytes
if sys.argv[2] != "load":
    size = 32 if sys.argv[2].endswith("@32") else None
    data = make_splits(raw, split_file=sys.argv[3], image_size=size)
    del raw
seconds = time.perf_counter() - start
done.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak / 2**20, max(top[0], anonymous()) / 2**20, pixels / 2**20, seconds, (resident() - base) / pixels,
      (anonymous() - base_anon) / pixels, base_anon / 2**20)
"""


def enlarged(folder: Path, size: int, out: Path) -> Path:
    from PIL import Image

    for path in sorted(folder.rglob("*.jpg")):
        target = out / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC).save(target, quality=90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autocls-memory-") as work:
        work = Path(work)
        (work / "jpg").mkdir()
        photos = enlarged(cifar10_jpg_folder(args.per_class, work / "jpg"), args.size, work / "photos")
        repo = str(Path(__file__).resolve().parents[1])  # this checkout's autocls, not an installed one
        env = {**os.environ, "AUTOCLS_CACHE": str(work / "cache"),
               "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
        held, peaks = {}, {}
        # (name, what the process does, its split file): the trials read the one "split" wrote
        steps = (("decode", "load", "a"), ("cached", "load", "a"), ("split", "split", "a"),
                 ("split@32", "split@32", "b"), ("trial", "trial", "a"), ("trial@32", "trial@32", "a"))
        for step, what, split in steps:
            out = subprocess.run([sys.executable, "-c", STEP, str(photos), what, str(work / f"{split}.npz")], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
            peaks[step], anon, pixels, seconds, held[step], held_anon, imports = map(float, out)
            print(f"{step:8s} peak {peaks[step]:5.0f} MB ({anon:5.0f} MB its own) = {peaks[step] / pixels:4.2f}x "
                  f"({anon / pixels:4.2f}x) the pixels ({pixels:.0f} MB), {seconds:4.1f} s; then holds "
                  f"{held[step]:4.2f}x ({held_anon:4.2f}x its own)", flush=True)
        print(f"at 32 px: a search's split peaks {peaks['split'] / peaks['split@32']:.2f}x lower, and a trial worker "
              f"holds {held['trial'] / max(held['trial@32'], 1e-3):.1f}x less, than at the folder's size; its own "
              f"memory is {imports:.0f} MB before the data (Python, torch and autocls imported)")


if __name__ == "__main__":
    main()
