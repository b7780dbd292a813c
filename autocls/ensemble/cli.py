"""``autocls build-ensemble`` and ``autocls predict``."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table


def cmd_build(args) -> int:
    from autocls.ensemble import build_ensemble
    from autocls.errors import UserError
    from autocls.search.runner import load_existing_study

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    study = load_existing_study(args.study, args.storage)
    result = build_ensemble(study, top=args.top, method=args.method, temperature=args.temperature, tta=args.tta,
                            name=args.name, overwrite=args.overwrite)
    print_scores(result)
    return 0


def predict_hint(folder) -> str:
    """The command that labels new images with a saved ensemble or run, its path as the user would type it here.

    Example:
        >>> predict_hint(Path.cwd() / "runs" / "my photos")
        "label new images with: autocls predict 'runs/my photos' <images or folders> [--csv predictions.csv]"
    """
    folder = Path(folder).resolve()
    shown = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
    return f"label new images with: autocls predict {shlex.quote(str(shown))} <images or folders> [--csv predictions.csv]"


def print_scores(result) -> None:
    """The best single trial beside the ensemble, on the held-out test split."""
    # The title and the shares name the members that vote: greedy selection's weights are how often each member
    # was picked, and one it never picked is not in the saved ensemble (a '#11: 0%' read as a member that barely
    # counts).  A search's closing ensemble that greedy selection left to its best trial was titled "greedy voting
    # of the top 3 trials" above scores equal to that trial's; one of a single trial "... of the top 1 trials".
    picked = [(m, w) for m, w in zip(result.members, result.weights) if w > 0]
    left_out = [f"#{m.number}" for m, w in zip(result.members, result.weights) if w <= 0]
    if len(picked) == 1:
        alone = picked[0][0].number
        voted = "the best trial alone" if alone == result.best_member else f"trial #{alone} alone"
    elif left_out:
        voted = f"{result.method} voting of {len(picked)} of the top {len(result.members)} trials"
    else:
        voted = f"{result.method} voting of the top {len(result.members)} trials"
    title = f"{voted}, on the held-out test split"
    table = Table(title=title, min_width=len(title))  # a title wider than the table wrapped mid-phrase
    for col in ("", "top-1", "top-5", "NLL", "ECE"):
        table.add_column(col, justify="right")

    def cell(value, fmt):
        return "n/a" if value is None else format(value, fmt)  # hard voting's votes; top-5 of five classes or fewer

    for label, s in ((f"best single trial (#{result.best_member})", result.best_member_test), ("ensemble", result.test)):
        table.add_row(label, cell(s["top1"], ".2%"), cell(s["top5"], ".2%"), cell(s["nll"], ".4f"), cell(s["ece"], ".4f"))
    console = Console()
    console.print(table)
    shares = ", ".join(f"#{m.number}: {w / sum(result.weights):.0%}" for m, w in picked)
    if left_out:
        shares += f" ({', '.join(left_out)} not picked by greedy selection on val)"
    # one line each, however long, in a pipe's 80 columns too: callers and scripts read them by their start and end
    per_class = None
    if "per_class_test" in result.extra:
        balanced, weakest = result.extra["per_class_test"]
        per_class = (f"ensemble per class on test: balanced accuracy {balanced:.2%}, lowest "
                     + ", ".join(f"{name} {accuracy:.2%} of {count}" for name, accuracy, count in weakest))
    below = result.extra.get("below_its_best")
    lines = [f"vote shares {shares}", result.extra.get("tta_choice"), below and f"note: {below}", per_class,
             f"saved to {result.folder}",
             predict_hint(result.folder)]
    for line in filter(None, lines):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def cmd_predict(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from autocls.data.sources import skipped_files_notice
    from autocls.ensemble import folder_scores, load_ensemble, predict_files
    from autocls.errors import UserError
    from autocls.files import atomic_write_text, check_writable_file

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if args.csv:
        check_writable_file(args.csv, "--csv")  # before the predictions, which a folder of photos takes minutes to make
    ensemble = load_ensemble(args.ensemble)
    stderr = Console(stderr=True)
    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=stderr, transient=True, disable=not stderr.is_terminal) as bar:  # a log gets no blank line
        task = bar.add_task("", total=None)
        table, bad = predict_files(ensemble, args.images, batch_size=args.batch_size, top_k=args.top_k,
                                   on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        stderr.print(f"{len(table)} predictions written to {args.csv}", markup=False, highlight=False, soft_wrap=True)
    else:
        for file, *ranked in table.itertuples(index=False):  # each class, then its probability, most probable first
            print("\t".join([file] + [v if i % 2 == 0 else f"{v:.4f}" for i, v in enumerate(ranked)]))
    scores = folder_scores(table, ensemble.classes)
    if scores is not None:
        top_k = f", top-{scores['top_k']} {scores['top_k_accuracy']:.2%}" if "top_k" in scores else ""
        stderr.print(f"{scores['files']} of {len(table)} files lie in a folder named after their class: top-1 "
                     f"{scores['accuracy']:.2%}{top_k}, balanced accuracy {scores['balanced_accuracy']:.2%}",
                     markup=False, highlight=False, soft_wrap=True)
    if bad:
        Console(stderr=True).print(f"warning: {skipped_files_notice(bad)}", style="yellow", markup=False,
                                   highlight=False, soft_wrap=True)
    if table.empty:
        Console(stderr=True).print("[red]error:[/red] none of the files is a readable image")
        return 1
    return 0


def register(sub) -> None:
    from autocls.ensemble.build import METHODS, TTA_CHOICES

    p = sub.add_parser("build-ensemble", help="vote the best trials of a study",
                       description="Combine the best trials of a study (COMPLETE, or cut by its time budget) and score them on the test split.")
    p.add_argument("--study", default="digits", help="study name (default digits)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--top", type=int, default=5,
                   help="how many of the best trials by val to combine (default 5; a study with fewer: all it has)")
    p.add_argument("--method", default="soft", choices=METHODS,
                   help="soft (default): members' probabilities averaged; hard: their votes counted; greedy: weights "
                        "chosen on val by greedy selection, as a search's closing ensemble, or an even vote where "
                        "that scores within val's standard error of them")
    # on by default, as in a search's closing ensemble: the CPU preset trains with label smoothing 0.2, and a
    # 2-minute CIFAR-10 search's trials soft-voted without it had ECE 0.203 (NLL 0.639), with it 0.006 (0.449),
    # top-1 84.62% and 84.69% (2026-12-06)
    p.add_argument("--temperature", action=argparse.BooleanOptionalAction, default=True,
                   help="fit a temperature per member on val before voting (default; --no-temperature: as trained)")
    # auto by default, as in a search's closing ensemble: after a 5-minute CIFAR-10 search, none scored 87.49% on
    # test, auto (flip-translate) 88.69%, in 16 s where none took 4 (2026-12-06)
    p.add_argument("--tta", default="auto", choices=TTA_CHOICES,
                   help="test-time augmentation: flip averages each image with its mirror, flip-translate adds "
                        "both shifted a pixel (6 passes); auto (default): of the modes within a standard error of "
                        "the highest val score, the one of the most views; none: each image once")
    p.add_argument("--name", help="folder name under studies/<study>/ensembles/ (default: method, top and options)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing ensemble of that name")
    p.set_defaults(func=cmd_build)

    q = sub.add_parser("predict", help="predict images with a saved ensemble")
    q.add_argument("ensemble", help="ensemble folder (studies/<study>/ensembles/<name>), or the folder of one "
                                    "trained run (runs/<dataset>-<model>, from autocls train)")
    q.add_argument("images", nargs="+", help="image files and/or folders")
    q.add_argument("--csv", help="write file,class,probability rows here instead of printing")
    q.add_argument("--top-k", type=int, default=1, metavar="K",
                   help="also name the K-1 next most probable classes: class_2, probability_2, ... (default 1)")
    q.add_argument("--batch-size", type=int, default=256)
    q.set_defaults(func=cmd_predict)
