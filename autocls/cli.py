"""The ``autocls`` command: a thin layer over the Python API.

Bad input (:class:`autocls.errors.UserError`) is printed as one line with a
non-zero exit; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.text import Text

from autocls import __version__
from autocls.errors import UserError
from autocls.metrics import RANKING_METRICS

console = Console(stderr=True)


_FLAG_HINTS = {  # what the flags whose default does not say it take
    "model": "a name `autocls models` lists, or timm/<name>",
    "width": "channel multiplier of the CIFAR nets",
    "image_size": "side in pixels the batches are resized to on the device",
    "data_dir": "where datasets are downloaded or found",
}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from autocls.training.config import CHOICES, DEVICES, Runtime, TrainConfig

    group = parser.add_argument_group(
        "config overrides (any TrainConfig or Runtime field; a model's own recipe, such as airbench's triangle "
        "schedule and label smoothing (autocls.models.model_recipe), and over it a dataset's, such as digits' "
        "1-pixel crop and no flips, go over the defaults shown)")
    for settings in (TrainConfig(), Runtime()):
        for name, default in settings.to_dict().items():
            if name == "dataset":
                continue
            shown = "not set" if default is None else str(default).lower() if isinstance(default, bool) else default
            names = {**CHOICES, "device": DEVICES}.get(name)
            what = f"one of {', '.join(names)}" if names else _FLAG_HINTS.get(name)
            help_text = f"{what} (default {shown})" if what else f"default {shown}"
            group.add_argument(f"--{name.replace('_', '-')}", dest=f"cfg_{name}", metavar="V", default=None,
                               help=help_text)


def _overrides(args) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}


def cmd_train(args) -> int:
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from autocls.data import prepare_data
    from autocls.data.loader import passes_per_epoch, steps_per_epoch
    from autocls.inference import TTA_MODES, TTA_PASSES
    from autocls.models.registry import check_model_name
    from autocls.search.cli import parse_duration
    from autocls.training import train
    from autocls.training.config import (BUDGET_MAX_EPOCHS, RECIPE_IMAGE_SIDE, ZOO_MAX_IMAGE_SIDE, fit_to_data,
                                         from_settings, load_settings)
    from autocls.training.runs import budget_width, run_folder
    from autocls.training.trainer import run_identity

    started = args.started_at or time.time()  # the budget counts the imports and loading the data too
    budget_s = parse_duration(args.time_budget) if args.time_budget is not None else None
    overrides = _overrides(args)
    if args.dataset:
        overrides["dataset"] = args.dataset
    cfg, runtime = load_settings(args.config, overrides) if args.config else from_settings(overrides)
    check_model_name(cfg.model)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder for the run")
    # bad names fail here, before the progress bar; images larger than the run's image_size are kept at that size
    data = prepare_data(runtime.dataset, runtime.data_dir, cfg.val_fraction, image_size=cfg.image_size)
    base = Path(args.out) if args.out else Path("runs") / f"{Path(runtime.dataset).name}-{cfg.model.replace('/', '_')}"
    identity = {"dataset": runtime.dataset}
    if args.metric != "accuracy":  # its best epoch is another: not the run a top-1 command left (older runs keep theirs)
        identity["metric"] = args.metric
    max_epochs = None  # the config's
    given = overrides.keys() | _config_keys(args.config)  # what the run sets, not the defaults
    images = len(data.train_y)
    fitted = fit_to_data(cfg, images, min(data.image_shape[1:]), given, runtime.dataset)
    if fitted.image_size != cfg.image_size:
        height, width = data.image_shape[1:]
        fitted_side = fitted.image_size
        console.print(Text(f"{cfg.model} trains images of {width}x{height} at {fitted_side}x{fitted_side}: the zoo's "
                           f"nets keep every pixel in their first stage and are made for images of 8-"
                           f"{ZOO_MAX_IMAGE_SIDE} px (ResNet-18 steps 39x slower at 341x256); --image-size 0 keeps "
                           f"them as they are, a timm model (timm/resnet18) downsamples at its stem"), soft_wrap=True)
    if fitted.batch_size != cfg.batch_size:
        steps = steps_per_epoch(images, cfg.batch_size, cfg.epoch_images)
        console.print(Text(f"batch {cfg.batch_size} makes {steps} step{'' if steps == 1 else 's'} an epoch of "
                           f"{images:,} training images: it trains at batch {fitted.batch_size}, lr {fitted.lr:.3g} "
                           f"(scaled by the batch's square root; --batch-size {cfg.batch_size} keeps its own)"),
                      soft_wrap=True)
    if fitted.epoch_images != cfg.epoch_images:
        passes = passes_per_epoch(images, fitted.epoch_images)
        steps = steps_per_epoch(images, fitted.batch_size)
        console.print(Text(f"an epoch of {images:,} training images makes {steps} step{'' if steps == 1 else 's'} "
                           f"at batch {fitted.batch_size}: each epoch passes over them {passes} times "
                           f"(--epoch-images 0 keeps one pass)"), soft_wrap=True)
    if fitted.crop_padding != cfg.crop_padding:
        side = cfg.image_size or min(data.image_shape[1:])
        console.print(Text(f"crop padding {cfg.crop_padding} is for {RECIPE_IMAGE_SIDE}-pixel images: {side}-pixel "
                           f"ones train at {fitted.crop_padding} (--crop-padding {cfg.crop_padding} keeps its own)"),
                      soft_wrap=True)
    cfg = fitted
    if budget_s is not None:
        if "epochs" not in given:
            # the recipe's default length (10) left 26% of `--time-budget 10m` unused (ResNet-18 at 1/4 width, 2 cores)
            max_epochs, identity = BUDGET_MAX_EPOCHS, {**identity, "epochs": "fitted to the budget"}
        cfg, identity, note = budget_width(cfg, runtime, data, base, identity, started + budget_s, "width" in given,
                                           torch.get_num_threads())
        if note:
            console.print(Text(note), soft_wrap=True)
    out_dir = run_folder(base, run_identity(cfg, runtime, identity))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the run's folder {out_dir} ({exc.strerror})") from None
    if out_dir != base:
        console.print(Text(f"{base} holds another run (another recipe, seed or dataset): this one trains in {out_dir}"),
                      soft_wrap=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[where]}"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console) as progress:
        task = progress.add_task(f"{cfg.model} on {runtime.dataset}", total=cfg.epochs, info="",
                                 where=f"0/{cfg.epochs} epochs")

        def step(epoch: int, taken: int, planned: int) -> None:  # the bar moves inside an epoch of minutes
            total = progress.tasks[task].total
            progress.update(task, completed=epoch - 1 + taken / planned,
                            where=f"{epoch - 1}/{total:g} epochs, step {taken}/{planned}")

        resumed = []

        def report(m: dict) -> None:
            if m.get("finished_run") and not resumed:  # its epochs are reported again, as they were
                resumed.append(m["epoch"])
                progress.console.print(f"{out_dir} holds this run, finished: nothing to train (--out elsewhere or "
                                       f"another --seed trains it again)", markup=False, highlight=False, soft_wrap=True)
            elif m.get("resumed_from_epoch") and not resumed:  # the restored epochs come first, each saying so
                resumed.append(m["resumed_from_epoch"])
                progress.console.print(f"{out_dir} holds this run's checkpoint of epoch {resumed[0]}: it continues "
                                       f"from there (--out elsewhere trains afresh)", markup=False, highlight=False,
                                       soft_wrap=True)
            info = f"val {m['val_acc']:.2%}  loss {m['train_loss']:.3f}  {m.get('images_per_s', 0):,.0f} img/s"
            total = m.get("epochs", cfg.epochs)
            progress.update(task, completed=m["epoch"], total=total, info=info, where=f"{m['epoch']}/{total} epochs")

        # With a budget, after the first epoch the run re-fits its length (and schedule) to end within it, at most
        # the config's epochs where it sets them, else BUDGET_MAX_EPOCHS, and stops at it regardless.
        end = started + budget_s if budget_s is not None else None
        try:
            # the end keeps time for the flip TTA's pass too (_with_chosen_tta): at equal budgets it added 1.7 points
            # on test in 2 minutes and 0.5 in 5 (benchmarks/run_tta.py); and for flip-translate's four more views
            # where they take a small share of the budget (training.trainer.CLOSING_SHARE)
            passes = tuple(TTA_PASSES[mode] for mode in TTA_MODES[1:]) if cfg.flip and args.tta == "auto" else 1
            # the same command (recipe, seed and dataset) continues the run its folder holds, as a search does
            result = train(cfg, data, reporter=report, out_dir=out_dir, runtime=runtime, deadline=end, fit_until=end,
                           max_epochs=max_epochs, resume=True, identity=identity, metric=args.metric, on_step=step,
                           closing_passes=passes)
        except KeyboardInterrupt:
            progress.stop()
            console.print(Text(f"interrupted: run the same command again to continue {out_dir} from its last checkpoint",
                               style="yellow"), soft_wrap=True)
            return 130
    summary = {}
    if result.status in ("complete", "time_budget") and result.best_epoch and result.test_acc is not None:
        # a spinner, not a line: after the bar has ended, six views of val and test may take a while on a CPU
        with console.status("choosing the test-time augmentation on val"):
            summary = _with_chosen_tta(out_dir, data, end if args.tta == "auto" else None, args.metric, args.tta)
    balanced = args.metric == "balanced_accuracy"
    table = Table(title=f"{cfg.model} on {runtime.dataset}: {result.status}")
    for col in ("epoch", "train loss", "val loss", "val top-1", *(["val balanced"] if balanced else []), "img/s"):
        table.add_column(col, justify="right")
    for m in result.history:
        if "val_acc" in m:
            table.add_row(str(m["epoch"]), f"{m['train_loss']:.4f}", f"{m['val_loss']:.4f}", f"{m['val_acc']:.2%}",
                          *([f"{m.get('val_balanced_acc', 0.0):.2%}"] if balanced else []), f"{m['images_per_s']:,.0f}")
    Console().print(table)
    ranked = RANKING_METRICS[args.metric]
    kept = result.best.get(ranked.objective, 0.0)
    line = f"best val {ranked.label} {kept:.2%} at epoch {result.best_epoch}"
    highest = max(result.history, key=lambda m: m.get(ranked.objective, 0.0), default={})
    if highest.get(ranked.objective, 0.0) > kept:  # a user reading the table above would ask why not that epoch
        line += (f" (the latest within a standard error of the highest, {highest[ranked.objective]:.2%} at epoch "
                 f"{highest['epoch']})")
    if summary.get("tta", "none") != "none":
        line += f", test top-1 {summary['test_acc_tta']:.2%} with {summary['tta']} TTA ({result.test_acc:.2%} without)"
    elif result.test_acc is not None:
        line += f", test top-1 {result.test_acc:.2%}"
    if balanced and result.test_balanced_acc is not None:  # at the TTA the run chose, as its top-1 above
        line += f", test balanced accuracy {summary.get('test_balanced_acc_tta', result.test_balanced_acc):.2%}"
    # one line each, however long, in a pipe's 80 columns too: scripts read them by their start and end
    if summary.get("tta_choice"):
        Console().print(summary["tta_choice"], markup=False, highlight=False, soft_wrap=True)
    Console().print(f"{line}; saved to {out_dir}", markup=False, highlight=False, soft_wrap=True)
    if result.status in ("complete", "time_budget") and result.best_epoch:
        from autocls.ensemble.cli import predict_hint

        Console().print(predict_hint(out_dir), markup=False, highlight=False, soft_wrap=True)
    if result.status == "time_budget":  # asked for: the best epoch's weights and test score are kept
        console.print(Text(f"stopped by --time-budget after epoch {result.epochs_run}; its best epoch is kept"),
                      soft_wrap=True)
    elif result.status != "complete":
        console.print(Text(f"stopped: {result.reason}", style="red"), soft_wrap=True)
        return 1
    last = result.history[-1] if result.history else {}
    if budget_s and result.epochs_run == 1 and not last.get("full_epoch", True):
        console.print(Text(f"the budget held {last.get('steps', '?')} training steps, less than one epoch: a smaller "
                           f"model (--width, --model airbench) or a longer --time-budget learns more", style="yellow"),
                      soft_wrap=True)
    return 0


def _with_chosen_tta(out_dir: Path, data, deadline: float | None, metric: str, tta: str = "auto") -> dict:
    """The run's record with the test-time augmentation val chooses for its best epoch (``tta="auto"``; ``"none"``
    keeps each image once), and the temperature fitted at it (:func:`autocls.ensemble.run_with_best_tta`), which
    ``autocls predict`` of the run applies. Chosen once: the same command after the run has finished prints the
    record's."""
    from autocls.artifacts import TrialArtifacts
    from autocls.ensemble import run_with_best_tta

    run = TrialArtifacts(out_dir)
    summary = run.load_result() or {}
    if summary and summary.get("tta_setting") != tta:  # not chosen yet, or with the other --tta
        chosen = run_with_best_tta(out_dir, data, deadline, metric, tta_modes=tta == "auto")
        summary.update(tta=chosen.extra["tta"], temperature=chosen.members[0].temperature,
                       test_acc_tta=chosen.test["top1"], test_balanced_acc_tta=chosen.test["balanced"],
                       tta_choice=chosen.extra["tta_choice"], tta_setting=tta)
        run.save_result(summary, run.load_history() or [])
    return summary


def _config_keys(path: str | None) -> set:
    """The keys the YAML config file at ``path`` sets (none without one)."""
    from autocls.files import load_yaml

    values = load_yaml(Path(path).read_text(), path) if path else None
    return set(values) if isinstance(values, dict) else set()


def cmd_datasets(args) -> int:
    from autocls.data import list_datasets

    print("\n".join(list_datasets() + ["<folder path> (ImageFolder layout)"]))
    return 0


def cmd_models(args) -> int:
    from autocls.models import list_models

    print("\n".join(list_models() + ["timm/<name> (any timm model; --pretrained true to fine-tune)"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from autocls.training.config import BUDGET_MAX_EPOCHS
    from autocls.training.trainer import CLOSING_SHARE

    parser = argparse.ArgumentParser(prog="autocls", description="AutoML for image classification.")
    parser.add_argument("--version", action="version", version=f"autocls {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one config", description="Train one config and print its metrics.")
    p.add_argument("dataset", nargs="?", help="dataset name or ImageFolder path (overrides the config's)")
    p.add_argument("--config", help="YAML file of TrainConfig fields")
    p.add_argument("--out", help="output folder (default runs/<dataset>-<model>; when it holds another run, the "
                                 "first free of <out>-2, <out>-3, ...)")
    p.add_argument("--time-budget", help="wall-clock budget, e.g. 20m: the run trains as many epochs as fit (at "
                                         f"most {BUDGET_MAX_EPOCHS}, or --epochs where given), re-fitted after the "
                                         "first epoch to end within it; without --width, a CIFAR net trains at the "
                                         "widest width that fits ten epochs (timed first)")
    p.add_argument("--tta", choices=("auto", "none"), default="auto",
                   help="test-time augmentation that the run is scored and predicts with: auto (the default) chooses "
                        "it on val, as a search's ensemble does, where the run trained with mirror flips (a "
                        "budget keeps time for the flip pass, and for flip-translate's four more where they take "
                        f"at most {CLOSING_SHARE * 100:g}%% of it); none shows each image once")
    p.add_argument("--metric", choices=RANKING_METRICS, default="accuracy",
                   help="what the kept (best) epoch is chosen by on val: accuracy (top-1, the default), or "
                        "balanced_accuracy (the mean of the per-class accuracies, for uneven classes)")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    sub.add_parser("datasets", help="list dataset names").set_defaults(func=cmd_datasets)
    sub.add_parser("models", help="list model names").set_defaults(func=cmd_models)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """Sub-commands that live beside their own API (search, ensemble, report)."""
    registrars = []
    for module in ("autocls.search.cli", "autocls.ensemble.cli", "autocls.report.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        registrars.append(mod.register)
    return registrars


def process_started() -> float | None:
    """When this process started, as a ``time.time()`` (Linux; None elsewhere).

    ``--time-budget`` bounds the whole command as a user times it, and importing torch, Optuna and autocls takes
    2-3 s before any of autocls's code runs (a 5-minute search ended at 5m03s).
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # no /proc, no CLOCK_BOOTTIME (macOS, Windows)
        return None
    return time.time() - age if 0 <= age < 3600 else None  # past an hour: clocks that disagree, not this command


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """autocls's own warnings (and skipped files) as one yellow line; the libraries' are left out."""
    if issubclass(category, UserWarning) and "autocls" in (filename or "") or "skipped" in str(message):
        console.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


# `docker stop` and most batch schedulers send SIGKILL 10 s after SIGTERM
SIGTERM_GRACE_S = 8.0


@contextmanager
def _terminate_as_ctrl_c():
    """SIGTERM taken as Ctrl-C is, for the time of a command, and the process ended ``SIGTERM_GRACE_S`` after it
    whatever it is doing; yields the list of the SIGTERMs that came.

    `kill`, `timeout`, `docker stop` and a batch scheduler's end of job send SIGTERM: a search then ended at once
    with exit code 134 and a page of Ray's C++ stack, without the line that says how to continue it. The current
    Ctrl-C handler gets it, so that during Ray Tune's run it is Tune's, which stops the run cleanly. Sent to the
    whole process group (`timeout`, a scheduler) it also ends Ray's own processes, and Ray Tune's clean stop then
    waited 60 s for them before Ray aborted the process: a search keeps its trials in the study as they go, RUNNING
    until they end, so ending the process outright loses nothing the same command needs to continue.
    """
    came = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield came
        return

    def end_now():
        console.print(Text(f"terminated: still stopping {SIGTERM_GRACE_S:g} s after SIGTERM, so ended now; what was "
                           f"saved is kept: run the same command again to continue", style="yellow"), soft_wrap=True)
        sys.stdout.flush()
        os._exit(128 + signal.SIGTERM)

    def as_ctrl_c(signum, frame):
        if not came:
            timer = threading.Timer(SIGTERM_GRACE_S, end_now)
            timer.daemon = True  # a clean stop within the grace ends the process without waiting for it
            timer.start()
        came.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):  # Ctrl-C ignored, as in a job a script started with `&`: still a clean stop
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    before = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        yield came
    finally:
        if before is not None:  # None: a handler set outside Python, which Python cannot set back
            signal.signal(signal.SIGTERM, before)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # a --time-budget counts the command as its user times it: from the process's start when this is the program
    # (the console script reads sys.argv), from this call when a caller passes its own arguments (a script, a test)
    args.started_at = process_started() if argv is None else None
    terminated = []
    try:
        with warnings.catch_warnings(), _terminate_as_ctrl_c() as terminated:
            warnings.simplefilter("always", UserWarning)
            # printed as they come: kept until the command returned, those that explain an error were lost with it
            # ("left out of the ensemble: ..." before "no trial with saved ... probabilities")
            warnings.showwarning = _show_warning
            code = args.func(args)
            return 128 + signal.SIGTERM if terminated and code == 130 else code  # a command that took it as Ctrl-C
    except UserError as exc:
        # Text, not markup: user input in the message ("[/x]") must print as it is
        console.print(Text.assemble(("error:", "red"), " ", str(exc)[:2000]), highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 128 + signal.SIGTERM if terminated else 130  # as a shell reports either signal
    except BrokenPipeError:  # `autocls ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
