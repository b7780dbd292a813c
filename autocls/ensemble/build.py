"""``build_ensemble``: vote the best trials of a study, score it on the untouched test split, save it."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from autocls.ensemble.metrics import summary
from autocls.ensemble.voting import apply_temperature, fit_temperature, greedy_selection, hard_vote, soft_vote
from autocls.errors import UserError

METHODS = ("soft", "hard", "greedy")
FORMAT_VERSION = 1


@dataclass
class Member:
    """One trial's best epoch: its config, weights and saved val/test probabilities."""

    number: int
    folder: Path
    config: dict
    val_probs: np.ndarray
    test_probs: np.ndarray
    val_acc: float
    temperature: float = 1.0

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial) -> "Member":
        folder = Path(trial.user_attrs.get("trial_dir", ""))
        needed = [folder / n for n in ("best.safetensors", "val_probs.npy", "test_probs.npy", "config.yaml")]
        missing = [p.name for p in needed if not p.exists()]
        if missing:
            raise UserError(f"trial {trial.number}: missing {', '.join(missing)} in '{folder}'")
        return cls(trial.number, folder, yaml.safe_load((folder / "config.yaml").read_text()),
                   np.load(folder / "val_probs.npy"), np.load(folder / "test_probs.npy"), float(trial.values[0]))


@dataclass
class EnsembleResult:
    """What build_ensemble made: weights per member, and val/test scores of the ensemble and its best member."""

    method: str
    members: list[Member]
    weights: np.ndarray
    val: dict
    test: dict
    best_member_val: dict
    best_member_test: dict
    best_member: int
    test_probs: np.ndarray
    best_member_test_probs: np.ndarray
    folder: Path | None = None
    extra: dict = field(default_factory=dict)


def top_trials(study: optuna.Study, top: int) -> list[optuna.trial.FrozenTrial]:
    """The ``top`` best COMPLETE trials by their first objective."""
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if len(complete) < top:
        raise UserError(f"study '{study.study_name}' has {len(complete)} COMPLETE trial(s), fewer than --top {top}")
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    return sorted(complete, key=lambda t: sign * t.values[0])[:top]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_ensemble(study: optuna.Study, top: int = 5, method: str = "soft", temperature: bool = False,
                   tta: str | None = None, rounds: int = 25, save: bool = True, name: str | None = None) -> EnsembleResult:
    """Combine the ``top`` best COMPLETE trials of ``study`` and evaluate on its test split.

    Selection (greedy weights, temperatures) uses the val probabilities only;
    the test split is touched once, to report.  With ``save`` the ensemble is
    written to ``<study folder>/ensembles/<name>/`` for :func:`load_ensemble`.

    Example:
        >>> result = build_ensemble(study, top=5, method="greedy")
        >>> result.test["top1"] >= result.best_member_test["top1"]
    """
    if method not in METHODS:
        raise UserError(f"unknown --method '{method}'; choose from {', '.join(METHODS)}")
    if tta not in (None, "none", "flip"):
        raise UserError(f"unknown --tta '{tta}'; choose flip or none")
    trials = top_trials(study, top)
    members = [Member.from_trial(t) for t in trials]
    folder = Path(study.user_attrs.get("folder", ""))
    from autocls.data import prepare_data

    data = prepare_data(study.user_attrs["dataset"], members[0].config.get("data_dir"),
                        members[0].config.get("val_fraction", 0.1), split_file=folder / "split.npz")
    val_y, test_y = data.val_y.numpy(), data.test_y.numpy()
    if tta == "flip":
        _recompute_with_flip(members, data)
    for m in members:
        if m.val_probs.shape[0] != len(val_y) or m.test_probs.shape[0] != len(test_y):
            raise UserError(f"trial {m.number}'s saved probabilities do not match the study's split")
        if temperature:
            m.temperature = fit_temperature(m.val_probs, val_y)
    val_probs = [apply_temperature(m.val_probs, m.temperature) for m in members]
    test_probs = [apply_temperature(m.test_probs, m.temperature) for m in members]

    if method == "greedy":
        weights = greedy_selection(val_probs, val_y, rounds=rounds)
    else:
        weights = np.ones(len(members))
    vote = hard_vote if method == "hard" else soft_vote
    val_ens, test_ens = vote(val_probs, weights), vote(test_probs, weights)
    best = int(np.argmax([summary(p, val_y)["top1"] for p in val_probs]))  # chosen on val, like everything else
    result = EnsembleResult(method, members, weights, summary(val_ens, val_y), summary(test_ens, test_y),
                            summary(val_probs[best], val_y), summary(test_probs[best], test_y), members[best].number,
                            test_ens, test_probs[best], extra={"tta": tta or "none", "classes": data.classes})
    if save:
        result.folder = _save(result, folder / "ensembles" / (name or f"{method}-top{top}"), data)
    return result


def _recompute_with_flip(members: list[Member], data) -> None:
    """Flip test-time augmentation needs the models: recompute each member's val and test probabilities."""
    from autocls.data.augment import BatchAugment
    from autocls.models import create_model
    from autocls.training.trainer import load_weights, predict_proba, resolve_device

    device = resolve_device("auto")
    for m in members:
        model = create_model(m.config["model"], data.num_classes, in_chans=data.image_shape[0])
        load_weights(model, m.folder / "best.safetensors")
        model.to(device)
        normalize = BatchAugment(data.mean, data.std, image_size=m.config.get("image_size")).normalize
        m.val_probs = predict_proba(model, data.val_x, normalize, flip_tta=True).numpy()  # batches move to the device
        m.test_probs = predict_proba(model, data.test_x, normalize, flip_tta=True).numpy()


def _save(result: EnsembleResult, folder: Path, data) -> Path:
    from autocls import __version__

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "members").mkdir(parents=True)
    members = []
    for m, w in zip(result.members, result.weights):
        if w <= 0:
            continue  # greedy selection may leave members out
        target = tmp / "members" / f"trial-{m.number:05d}.safetensors"
        shutil.copyfile(m.folder / "best.safetensors", target)
        members.append({"trial": m.number, "weights_file": f"members/{target.name}", "sha256": _sha256(target),
                        "weight": float(w), "temperature": m.temperature, "config": m.config, "val_acc": m.val_acc})
    manifest = {
        "format": FORMAT_VERSION, "autocls_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "method": result.method, "tta": result.extra["tta"], "classes": data.classes, "mean": list(data.mean),
        "std": list(data.std), "image_shape": list(data.image_shape), "members": members,
        "scores": {"val": result.val, "test": result.test, "best_member_val": result.best_member_val,
                   "best_member_test": result.best_member_test, "best_member": result.best_member},
    }
    (tmp / "ensemble.json").write_text(json.dumps(manifest, indent=1))
    np.save(tmp / "test_probs.npy", result.test_probs)
    np.save(tmp / "best_member_test_probs.npy", result.best_member_test_probs)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)  # the folder appears complete or not at all
    return folder
