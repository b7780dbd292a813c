"""Budget-true AutoML on real CIFAR-10 photos: autocls's search vs the best seed recipe alone, same wall time.

The 50,000 shared CIFAR-10 training JPEGs are split here, stratified and
seeded, into train / val / test folders (40k / 5k / 5k); no arm's training or
selection sees the test part.  Three arms, one after the other, each with the
same wall-clock budget on this machine's cores:

  (a) ``autocls search <folder> --time-budget B``: the automatic preset, trials
      sized to the budget, and the closing ensemble;
  (b) the preset's first seed recipe trained alone with ``autocls train
      --time-budget B`` on all cores, at the width (a)'s budget plan gave
      that seed (when (a) ran): its epochs re-fitted from its first one
      to fill the budget, as (a)'s trials are (up to ``--recipe-epochs``, by
      default the epochs that fill the budget by autocls's own calibration,
      at least the preset's longest trial); scored plain and with each TTA
      mode (which (a)'s ensemble chooses among on val), and compared with (a)
      under the mode (a) chose;
  (c) ``autocls search ... --sampler random --space <the preset without its seeds>``: random search
      over the same space, budget-sized trials and closing ensemble, without the preset's seed recipes
      (with them, its first trials would be (a)'s: on 2 CPU cores the seeds fill 20 minutes before any
      draw runs, so (c) with seeds trained what (a) trained); what the seed recipes add over a random draw;
  (d) the preset's first two seeds, each trained as (b) for half the budget (at
      --recipe-width if given) with seeds --seed and --seed + 1, their probabilities
      averaged at each TTA: whether two half-length trials ensembled beat one
      full-length one where only one fits (not run by default).

Printed per arm: wall time, best single model's and ensemble's test top-1.  The
machine's speed varies from day to day, so the fp32 matmul GFLOP/s on its
threads is printed too; compare arms of the same run only.

    python benchmarks/budget.py                 # 20 minutes per arm (about an hour)
    python benchmarks/budget.py --budget 3m     # a smoke run
    python benchmarks/budget.py --arms ab       # (a) and (b) only
    python benchmarks/budget.py --arms ab --seed 1   # other initialisations and batch orders in every arm

Where several of the preset's full-length trials fit the budget (a GPU, a
longer budget, a CPU with bf16 instructions), the search can ensemble them; on 2
CPU cores without AVX-512 and 20 minutes of all 40k training images one trial
fills the budget.  ``--train-per-class``
trains on fewer images (the preset's epochs stay about 45,000 images each, its
``epoch_images``: several passes over the smaller part); ``--recipe-epochs``
sets (b)'s ceiling by hand, ``--recipe-width`` its width:

    python benchmarks/budget.py --arms ab --train-per-class 500
    python benchmarks/budget.py --arms b --recipe-width 0.75 --recipe-epochs 40
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import split_cifar10  # noqa: E402

from autocls.inference import TTA_MODES  # noqa: E402
from autocls.search.cli import parse_duration  # noqa: E402
from autocls.search.runner import leaderboard  # noqa: E402
from autocls.search.scheduler import SEED_RECIPE  # noqa: E402

AUTOCLS = [sys.executable, "-m", "autocls"]


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    torch.set_num_threads(threads)
    a = torch.randn(n, n)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return repeats * 2 * n**3 / (time.perf_counter() - start) / 1e9


def runs_side_by_side(doc: str, prefix: str, more_arguments=None) -> tuple[argparse.Namespace, Path, Path]:
    """A benchmark of ``autocls train`` runs side by side: its command line (``--budgets``, ``--seeds``,
    ``--train-per-class``, and what ``more_arguments(parser)`` adds), the shared photos split under a new work
    folder, the machine's speed printed.  Returns the arguments, the work folder and the split's root."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if more_arguments:
        more_arguments(parser)
    parser.add_argument("--budgets", default="2m,5m", help="comma-separated --time-budget of each photo run")
    parser.add_argument("--seeds", type=int, default=1, help="runs of each arm at each budget (seeds 0..N-1)")
    parser.add_argument("--train-per-class", type=int, default=4000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    data = split_cifar10(work, args.train_per_class)
    cores = os.cpu_count() or 1
    print(f"{cores} cores, fp32 matmul {matmul_gflops(cores):.0f} GFLOP/s", flush=True)
    return args, work, data


def run(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.time()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.time() - start, proc


def search_arm(data: Path, work: Path, budget: str, study: str, extra: list[str]) -> dict:
    wall, proc = run([*AUTOCLS, "search", str(data), "--time-budget", budget, "--study", study, *extra], work)
    import optuna

    s = optuna.load_study(study_name=study, storage=f"sqlite:///{work / 'studies' / study}.db")
    manifest = json.loads((Path(s.user_attrs["ensemble"]) / "ensemble.json").read_text())
    scores = manifest["scores"]
    # trials that trained, whatever their state (proposals PRUNED before starting, for want of time, are not)
    trained = trials_run(s)
    choice = next((ln for ln in proc.stdout.splitlines() if ln.startswith("TTA by val top-1")), "")
    seeds = [t for t in s.trials if t.user_attrs.get(SEED_RECIPE)]
    # the same trials voted at each TTA mode as the closing ensemble votes them (greedy, temperatures fitted),
    # after the clock: what the mode val chose, or the one the budget left no time for, is worth on test
    from autocls.ensemble import build_ensemble

    with warnings.catch_warnings():  # its notice of fewer candidates than 5, once per mode: the search printed it
        warnings.filterwarnings("ignore", message=".*fewer than --top")
        at_tta = {mode: build_ensemble(s, top=5, method="greedy", temperature=True, tta=mode,
                                       name=f"at-{mode}").test["top1"] for mode in TTA_MODES}
    return {"wall_s": wall, "single": scores["best_member_test"]["top1"], "ensemble": scores["test"]["top1"],
            "at_tta": at_tta,
            "seed_width": seeds[0].params.get("width") if seeds else None,  # as the budget fitted the first seed
            "trials": len(trained), "tta": choice, "tta_used": manifest["tta"],
            # what each trial trained, and which the ensemble kept ("four trials ensembled" was two of them)
            "trials_run": trained, "members": [m["trial"] for m in manifest["members"]],
            "preset": next((ln for ln in proc.stderr.splitlines() if "preset" in ln), ""),
            # the calibration's seconds per epoch of every model@width, measured side by side in this run
            "sized": [ln for ln in proc.stderr.splitlines() if ln.startswith("budget:")]}


def trials_run(study) -> list[str]:
    """One line per trial that trained: its number, state, model and width, epochs, seconds and best val top-1."""
    board = leaderboard(study)
    if board.empty:
        return []
    board = board[board["epochs"].notna() & (board["epochs"] > 0)]
    return [f"#{r['number']} {r['state']} {r.get('model')}@{r.get('width', 1.0):g} {r['epochs']:.0f} epochs "
            f"{r['duration_s']:.0f} s val {r['best_val_acc']:.2%}" for r in board.to_dict("records")]


def filling_epochs(space, data, budget_s: float, width: float | None = None) -> int:
    """The epochs of ``space``'s first seed that fill ``budget_s`` here, by the search's own calibration, with
    a margin (its estimate is off by up to 30%; the run re-fits down from its first epoch), and at least the
    preset's longest trial.  The preset's length alone as (b)'s ceiling left 70% of (b)'s budget unused on a
    machine with bf16 instructions (16 epochs in 360 s of 1,200; 2026-12-01)."""
    from autocls.search.budget import config_key, seconds_per_epoch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    seconds = seconds_per_epoch(space, data, threads=os.cpu_count() or 1, device=device)
    key = config_key({**space.fixed, **space.seeds[0], **({"width": width} if width else {})})
    if key not in seconds:
        sys.exit(f"--recipe-width {width:g}: the preset times {', '.join(seconds)} only; give --recipe-epochs too")
    return max(space.max_epochs, int(1.3 * budget_s / seconds[key]) + 1)


def preset(data: Path) -> str:
    """The name of the preset ``autocls search`` chooses for ``data`` on this machine."""
    from autocls.search.space import preset_space

    return preset_space(str(data), gpus=torch.cuda.device_count())[0]


def unseeded_preset(data: Path, work: Path) -> Path:
    """:func:`preset`'s space written without its seed recipes: (c)'s space."""
    from autocls.search.space import SearchSpace

    name = preset(data)
    path = work / f"{name}-unseeded.yaml"
    path.write_text(SearchSpace.load(name).without_seeds().source)
    return path


def train_seed(data: Path, work: Path, budget: str, epochs: int | None, seed: int, which: int,
               out: str, width: float | None = None) -> tuple[float, dict, dict[str, torch.Tensor], torch.Tensor]:
    """Seed recipe ``which`` of the preset by :func:`train_recipe`: ``epochs`` (by default
    :func:`filling_epochs`) as the ceiling, re-fitted after its first epoch to fill the budget, as a trial of (a)
    is.  Returns :func:`train_recipe`'s three and the test labels; the result has its ceiling too.
    With ``width``, the recipe at that width instead of its own."""
    from autocls.data import prepare_data
    from autocls.search.space import SearchSpace

    space = SearchSpace.load(preset(data))
    photos = prepare_data(str(data))
    epochs = epochs or filling_epochs(space, photos, parse_duration(budget), width)
    recipe = {**space.fixed, **space.seeds[which], **({"width": width} if width else {}), "epochs": epochs}
    wall, result, probs = train_recipe(data, photos, work, recipe, budget, seed, out)
    return wall, {**result, "ceiling": epochs}, probs, photos.test_y


def train_recipe(data: Path, photos, work: Path, recipe: dict, budget: str, seed: int,
                 out: str) -> tuple[float, dict, dict[str, torch.Tensor]]:
    """``recipe`` (every field, ``epochs`` its ceiling) trained on ``data`` with ``autocls train --time-budget``
    on all cores, its run in ``work / out``: its wall time, ``result.json`` and test probabilities on ``photos``
    (``data`` decoded) under each TTA mode but none (predicted after the clock: TTA's cost left out)."""
    config = work / f"{out}.yaml"
    config.write_text(json.dumps(recipe))
    wall, _ = run([*AUTOCLS, "train", str(data), "--config", str(config), "--out", str(work / out),
                   "--time-budget", budget, "--seed", str(seed)], work)
    result = json.loads((work / out / "result.json").read_text())
    return wall, result, tta_probs(work / out, recipe, photos, TTA_MODES[1:])


def top1(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(1) == labels).float().mean())


def recipe_arm(data: Path, work: Path, budget: str, epochs: int | None, seed: int = 0,
               width: float | None = None) -> dict:
    """(b): the preset's first seed alone for the whole budget (:func:`train_seed`), at its own width or ``width``."""
    wall, result, probs, labels = train_seed(data, work, budget, epochs, seed, which=0, out="recipe", width=width)
    return {"wall_s": wall, "single": result["test_acc"], "ensemble": None, "trials": 1,
            **{tta: top1(p, labels) for tta, p in probs.items()},
            "preset": f"seed recipe{f' at width {width:g}' if width else ''}, {result['epochs_run']} epochs "
                      f"(ceiling {result['ceiling']})"}


def halves_arm(data: Path, work: Path, budget: str, seed: int = 0, width: float | None = None) -> dict:
    """(d): the preset's first two seeds, each alone for half the budget as (b) is for all of it (at ``width`` if
    given), their test probabilities averaged under each TTA mode: what a search that splits a budget fitting one
    full-length trial into two shorter ones, ensembled, could gain over (b) (one full-length trial) at best, its
    own overheads left out.  The halves train with seeds ``seed`` and ``seed + 1``, as a search's trials 0 and 1
    do: with one seed both would start from the same weights and see the same batches."""
    half = f"{parse_duration(budget) / 2:.0f}s"
    walls, results, probs, (labels, _) = zip(*(train_seed(data, work, half, None, seed + i, which=i,
                                                          out=f"half{i}", width=width) for i in (0, 1)))
    averaged = {tta: top1(sum(p[tta] for p in probs), labels) for tta in TTA_MODES[1:]}
    return {"wall_s": sum(walls), "single": max(r["test_acc"] for r in results),
            "ensemble": averaged["flip"], "averaged": averaged,
            "trials": 2,
            "preset": "; ".join(f"seed recipe {i}{f' at width {width:g}' if width else ''}, {r['epochs_run']} epochs"
                                for i, r in enumerate(results)),
            "halves": [{"single": r["test_acc"], **{tta: top1(p[tta], labels) for tta in TTA_MODES[1:]}}
                       for r, p in zip(results, probs)]}


def tta_probs(run_dir: Path, recipe: dict, data, modes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Test class probabilities of a trained run's best weights under each TTA mode of ``modes``, as an ensemble
    with it predicts."""
    from autocls.artifacts import WEIGHTS_FILE
    from autocls.data.augment import BatchAugment
    from autocls.inference import load_trained_model, predict_proba, trained_precision

    device = torch.device("cpu")
    model = load_trained_model(recipe, run_dir / WEIGHTS_FILE, data.num_classes, data.image_shape[0], device)
    options = trained_precision(recipe, device)
    normalize = BatchAugment(data.mean, data.std, image_size=recipe.get("image_size")).normalize
    return {tta: predict_proba(model, data.test_x, normalize, tta=tta, **options) for tta in modes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="20m", help="wall-clock budget per arm (default 20m)")
    parser.add_argument("--arms", default="abc", help="which arms to run, e.g. ab (default abc)")
    parser.add_argument("--train-per-class", type=int, default=4000,
                        help="training images per class (default 4000, all; val and test keep 500 each)")
    parser.add_argument("--recipe-epochs", type=int, default=None,
                        help="(b)'s most epochs, re-fitted down to its budget (default: those that fill it, by calibration)")
    parser.add_argument("--recipe-width", type=float, default=None,
                        help="(b)'s and (d)'s seeds at this width instead of their own: fewer epochs of a wider net, "
                             "or more of a narrower one")
    # Every arm is seeded (0 by default), so a second run of the same code on the same machine repeats the
    # first: (a) scored 89.94% twice, 2026-12-01. Another --seed draws other initialisations and batch orders.
    parser.add_argument("--seed", type=int, default=0, help="training seed of every arm (default 0)")
    args = parser.parse_args()
    if not args.arms or set(args.arms) - set("abcd"):
        parser.error(f"--arms: letters of abcd, got '{args.arms}'")
    if not 1 <= args.train_per_class <= 4000:
        parser.error(f"--train-per-class: 1 to 4000, got {args.train_per_class}")
    budget_s = parse_duration(args.budget)
    cores = os.cpu_count()
    print(f"machine: {cores} cores, fp32 matmul {matmul_gflops(cores):.0f} GFLOP/s on {cores} threads, "
          f"{matmul_gflops(1):.0f} on 1; budget {budget_s:.0f} s per arm; "
          f"{10 * args.train_per_class} training images", flush=True)
    work = Path(tempfile.mkdtemp(prefix="autocls-budget-"))
    data = split_cifar10(work, args.train_per_class)
    # decode the JPEGs into autocls's cache once, before the clocks start: otherwise the
    # first arm would pay for decoding and the later ones not
    from autocls.data import prepare_data

    prepare_data(str(data))
    arms = {}
    if "a" in args.arms:
        arms["(a) autocls search"] = search_arm(data, work, args.budget, "a", ["--seed", str(args.seed)])
        print("(a)", arms["(a) autocls search"], flush=True)
    if "b" in args.arms:
        # (b) is the seed at the width (a)'s budget fitted it to (wider where one trial fills the budget), the
        # strongest recipe the preset knows for this budget here, unless --recipe-width says otherwise
        width = args.recipe_width or arms.get("(a) autocls search", {}).get("seed_width")
        arms["(b) best seed alone"] = recipe_arm(data, work, args.budget, args.recipe_epochs, args.seed, width)
        print("(b)", arms["(b) best seed alone"], flush=True)
    if "c" in args.arms:
        arms["(c) random search"] = search_arm(data, work, args.budget, "c",
                                               ["--sampler", "random", "--space", str(unseeded_preset(data, work)),
                                                "--seed", str(args.seed)])
        print("(c)", arms["(c) random search"], flush=True)
    if "d" in args.arms:
        arms["(d) two seeds, half each"] = halves_arm(data, work, args.budget, args.seed, args.recipe_width)
        print("(d)", arms["(d) two seeds, half each"], flush=True)
    print(f"\n{'arm':24s} {'wall s':>8s} {'/budget':>8s} {'trials':>7s} {'single':>8s} {'ensemble':>9s}")
    for name, a in arms.items():
        ens = f"{a['ensemble']:.2%}" if a["ensemble"] is not None else "-"
        print(f"{name:24s} {a['wall_s']:8.0f} {a['wall_s'] / budget_s:8.3f} {a['trials']:7d} {a['single']:8.2%} {ens:>9s}")
    for name, a in arms.items():
        if "members" in a:
            print(f"{name.split()[0]} trials {'; '.join(a['trials_run'])}; ensembled "
                  + ", ".join(f"#{number}" for number in a["members"]))
            print(f"{name.split()[0]} its trials' ensemble on test at each TTA, built again after the clock: "
                  + ", ".join(f"{mode} {top1:.2%}" for mode, top1 in a["at_tta"].items())
                  + f" ({a['tta_used']} used)")
    if {"(b) best seed alone", "(d) two seeds, half each"} <= set(arms):
        b, d = arms["(b) best seed alone"], arms["(d) two seeds, half each"]
        for tta in TTA_MODES[1:]:
            halves = ", ".join(f"{half[tta]:.2%}" for half in d["halves"])
            print(f"(d) seeds with {tta} TTA: {halves}, their average {d['averaged'][tta]:.2%}; (b) with {tta} "
                  f"TTA: {b[tta]:.2%}: {100 * (d['averaged'][tta] - b[tta]):+.2f} points")
    if not {"(a) autocls search", "(b) best seed alone"} <= set(arms):
        return
    a, b = arms["(a) autocls search"], arms["(b) best seed alone"]
    print(f"\n(a) {a['tta']}; (b) " + ", ".join(f"with {m} TTA {b[m]:.2%}" for m in TTA_MODES[1:]))
    same = f" ({100 * (a['ensemble'] - b[a['tta_used']]):+.2f} against (b) with {a['tta_used']} TTA)" \
        if a["tta_used"] != "none" else ""
    print(f"(a) ensemble - (b) single: {100 * (a['ensemble'] - b['single']):+.2f} points{same}; "
          f"(a) wall / budget: {a['wall_s'] / budget_s:.3f}")


if __name__ == "__main__":
    main()
