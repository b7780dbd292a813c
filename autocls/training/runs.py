"""Where ``autocls train`` keeps its runs, and the width a run's time budget fits.

A run lives in ``runs/<dataset>-<model>``; a run of another recipe, seed or dataset is never written over it but
goes to the first of ``runs/<dataset>-<model>-2``, ``-3``, ... that holds no other run (as Ultralytics numbers
its runs), so the same command finds its own folder again and continues it.

Example:
    >>> import tempfile
    >>> from autocls.artifacts import TrialArtifacts
    >>> base = Path(tempfile.mkdtemp()) / "digits-lenet"
    >>> run_folder(base, {"config": "a"}).name
    'digits-lenet'
    >>> TrialArtifacts(base, identity={"config": "a"}).claim()
    False
    >>> run_folder(base, {"config": "a"}).name, run_folder(base, {"config": "b"}).name
    ('digits-lenet', 'digits-lenet-2')
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Iterator

from autocls.artifacts import TrialArtifacts
from autocls.errors import UserError
from autocls.training.config import Runtime, TrainConfig
from autocls.training.trainer import run_identity


def run_folders(base: str | Path) -> Iterator[tuple[Path, dict | None]]:
    """``base``, ``base-2``, ``base-3``, ... each with the identity of the run it holds, up to the first holding
    none."""
    base = Path(base)
    for n in itertools.count(1):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        owner = TrialArtifacts(folder).owner()
        yield folder, owner
        if owner is None:
            return


def run_folder(base: str | Path, identity: dict) -> Path:
    """The folder of the run of ``identity`` (:func:`~autocls.training.trainer.run_identity`): the one of
    :func:`run_folders` that holds it, else the first free one."""
    return next(folder for folder, owner in run_folders(base) if owner in (None, identity))


def budget_width(cfg: TrainConfig, runtime: Runtime, data, base: str | Path, identity: dict, until: float,
                 width_given: bool, threads: int) -> tuple[TrainConfig, dict, str | None]:
    """``cfg`` at the width that fills the time to ``until`` (a ``time.time()``) with enough epochs, the run's
    identity, which says so, and a line saying what the width trades where it is not ``cfg``'s; with
    ``width_given``, ``cfg`` as it is, once its width is timed to leave time to train.

    A model at its full width can train part of one epoch in a short budget on a CPU (ResNet-18 in 3 minutes on
    2 cores: 87 steps, 38.35%); a narrower one trains more and learns more
    (:func:`autocls.search.budget.train_width`).  A run of the same recipe in a folder of ``base``'s keeps its
    width, so the same command continues it whatever the timing says now; a run of an explicit width is another
    run.  A budget that leaves no time to train raises :class:`~autocls.errors.UserError`: a run trains a step and
    evaluates val and test at least (`--width 1 --time-budget 30s`, ResNet-18 on 2 cores, ended at 86 s with
    10.03%).
    """
    from autocls.inference import resolve_device
    from autocls.models.registry import accepts_width
    from autocls.search.budget import TRAIN_WIDTHS, train_width

    device = resolve_device(runtime.device).type
    if not accepts_width(cfg.model) or device not in ("cpu", "cuda"):
        return cfg, identity, None
    widths = (cfg.width,) if width_given else TRAIN_WIDTHS
    if not width_given:
        identity = {**identity, "width": "fitted to the budget"}
    owners = [owner for _, owner in run_folders(base)]
    for width in widths:
        if run_identity(dataclasses.replace(cfg, width=width), runtime, identity) in owners:
            return dataclasses.replace(cfg, width=width), identity, None
    width, epochs = train_width(cfg, data, until, threads, device, widths)
    if not epochs[width]:
        raise UserError(f"--time-budget leaves no time to train {cfg.model} at width {width:g} here: its closing "
                        f"evaluation of val and test alone would end past it; give it longer, or a narrower --width")
    note = None
    if width != cfg.width:
        widest = max(epochs)
        note = (f"budget: {cfg.model} at width {widest:g} trains {_epochs_text(epochs[widest])} in the budget here, "
                f"at {width:g} {_epochs_text(epochs[width])}: it trains at width {width:g} (--width {cfg.width:g} "
                f"keeps its own)")
    return dataclasses.replace(cfg, width=width), identity, note


def _epochs_text(epochs: float) -> str:
    """``~3 epochs``, ``~1 epoch``, ``~0.25 of an epoch`` or ``nothing``."""
    if epochs >= 1:
        return f"~{int(epochs)} epoch{'s' * (epochs >= 2)}"
    return f"~{epochs:.2g} of an epoch" if epochs else "nothing"
