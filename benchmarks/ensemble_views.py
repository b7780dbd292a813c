"""A second ``build-ensemble`` of a study reads the test-time augmentation views the first one computed.

A search of real CIFAR-10 photos (the first ``--per-class`` shared photos of each class, the search's own val and
test splits) with ``--time-budget`` and no closing ensemble; then ``autocls build-ensemble --tta flip-translate``
twice, each timed as a user runs it.  The first runs each member's five added views over val and test and keeps
them with the trial's files; the second reads them.  Prints both wall times, their ratio, and whether the two
ensembles scored the same on test.  To measure other code beside this, run it with ``PYTHONPATH`` set to that
checkout (the commands run as ``python -m autocls`` of whichever autocls ``python`` imports)::

    python benchmarks/ensemble_views.py --budget 5m
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared_data import cifar10_jpg_folder  # noqa: E402


def autocls(*args: str, cwd: Path) -> float:
    """Runs ``autocls *args`` in ``cwd``; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autocls", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="5m", help="the search's --time-budget (default 5m, as the README's)")
    parser.add_argument("--per-class", type=int, default=5000, help="photos of each class (default 5000: all)")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autocls-views-"))
    photos = cifar10_jpg_folder(args.per_class, work)
    search_s = autocls("search", str(photos), "--time-budget", args.budget, "--no-ensemble", "--study", "views",
                       cwd=work)
    build = ("build-ensemble", "--study", "views", "--top", str(args.top), "--tta", "flip-translate")
    first_s = autocls(*build, "--name", "first", cwd=work)
    second_s = autocls(*build, "--name", "second", cwd=work)
    scores = [json.loads((work / "studies" / "views" / "ensembles" / name / "ensemble.json").read_text())
              for name in ("first", "second")]
    members = len(scores[0]["members"])
    same = scores[0]["scores"]["test"] == scores[1]["scores"]["test"]
    print(f"search ({args.budget}, {10 * args.per_class:,} photos): {search_s:.1f} s; build-ensemble --top {args.top} "
          f"--tta flip-translate of {members} member(s): first {first_s:.1f} s (views computed and kept), second "
          f"{second_s:.1f} s (views read): ratio {first_s / second_s:.1f}x; the same test scores: {same}")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
