"""``build_ensemble``: vote the best trials of a study, score it on the untouched test split, save it."""
from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from autocls.artifacts import SPLIT_FILE, TrialArtifacts, sha256_file, study_store, trial_artifacts
from autocls.ensemble.voting import apply_temperature, fit_temperature, greedy_or_even, hard_vote, soft_vote
from autocls.errors import UserError
from autocls.files import atomic_write_text, check_folder_name
from autocls.inference import TTA_MODES
from autocls.metrics import (RANKING_METRICS, accuracy_standard_error, ranking_metric_named, summary, weakest_classes,
                             within_standard_error)
from autocls.search.space import SearchSpace

METHODS = ("soft", "hard", "greedy")
TTA_CHOICES = (*TTA_MODES, "auto")  # auto: chosen on val (tta_by_val)
FORMAT_VERSION = 1
MANIFEST_FILE = "ensemble.json"  # the ensemble folder's manifest: members, voting, classes, normalisation
ENSEMBLES_FOLDER = "ensembles"  # in a study's folder, one folder per saved ensemble


@dataclass
class Member:
    """One trial's best epoch: its config, weights and saved val/test probabilities."""

    number: int
    weights_file: Path  # on this machine (fetched from the study's artifact store)
    config: dict
    val_probs: np.ndarray
    test_probs: np.ndarray
    val_acc: float
    temperature: float = 1.0
    artifacts: TrialArtifacts | None = None  # where its views with test-time augmentation are kept, once computed
    epoch: int = -1  # of its weights

    @property
    def label(self) -> str:
        """How messages name it: its trial, or a run's folder (:func:`run_with_best_tta`, number -1)."""
        return f"trial {self.number}" if self.number >= 0 else "the run"


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


def ranking_metric(study: optuna.Study) -> str:
    """What the study ranks its trials by (of :data:`~autocls.metrics.RANKING_METRICS`): its space's first objective.

    The ensemble is selected by it too: a study ranking by balanced accuracy wants the ensemble that scores
    highest in it, not the one of highest top-1.
    """
    space = SearchSpace.of_study(study)
    return space.ranking_metric if space else "accuracy"


def candidates(study: optuna.Study, val_y: np.ndarray,
               metric: str = "accuracy") -> tuple[list[Member], list[str]]:
    """Every trial that left one epoch's weights with val and test probabilities, best val ``metric`` first.

    COMPLETE trials and trials cut by the time budget qualify (PRUNED ones by
    ASHA stop before predicting the test split).  Returns the members and one
    line per trial that should have qualified but could not be read.
    """
    members, problems = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        artifacts = trial_artifacts(study, t)
        if artifacts is None:
            continue  # never ran (left out by the budget)
        member = artifacts.load_member()
        if member is None:
            if t.state == TrialState.COMPLETE:
                missing = artifacts.missing()
                problems.append(f"trial {t.number}: " + (f"missing {', '.join(missing)}" if missing else
                                                         "its weights and probabilities are of different epochs"))
            continue
        if member.val_probs.shape[0] != len(val_y):
            problems.append(f"trial {t.number}: its saved probabilities do not match the study's split")
            continue
        val_acc = float((member.val_probs.argmax(1) == val_y).mean())  # of the saved model itself
        members.append(Member(t.number, member.weights_file, member.config, member.val_probs, member.test_probs, val_acc,
                              artifacts=artifacts, epoch=member.epoch))
    score = RANKING_METRICS[metric].score
    members.sort(key=lambda m: (-score(m.val_probs, val_y), m.number))
    return members, problems


def loadable(members: list[Member], top: int, num_classes: int, in_chans: int) -> tuple[list[Member], list[str]]:
    """The first ``top`` of ``members`` whose weights this autocls loads, and a line for each passed over: a trial
    that an older autocls saved for a model whose code has changed since (a study continued after an upgrade), which
    would otherwise stop the ensemble, or its ``predict``, with an error after the search."""
    from autocls.inference import load_trained_model

    kept, problems = [], []
    for m in members:
        if len(kept) == top:
            break
        try:
            load_trained_model(m.config, m.weights_file, num_classes, in_chans, torch.device("cpu"))
        except UserError as error:
            problems.append(f"trial {m.number}: {error}")
        else:
            kept.append(m)
    return kept, problems


def saved_ensembles(study_folder: Path) -> list[Path]:
    """The ensembles saved in a study's folder, the latest last.

    Example:
        >>> saved_ensembles(Path("studies/no-such-study"))
        []
    """
    manifests = Path(study_folder).glob(f"{ENSEMBLES_FOLDER}/*/{MANIFEST_FILE}")
    return [p.parent for p in sorted(manifests, key=lambda p: p.stat().st_mtime)]


def ensemble_name(method: str, top: int, temperature: bool = True, tta: str | None = "auto") -> str:
    """The default folder name: every option that changes the ensemble from the defaults is in it.

    Example:
        >>> ensemble_name("greedy", 5, tta="flip-translate")
        'greedy-top5-flip-translate'
        >>> ensemble_name("soft", 5, temperature=False, tta="none")
        'soft-top5-no-temperature-no-tta'
    """
    suffix = "" if tta == "auto" else "-no-tta" if tta in (None, "none") else f"-{tta}"
    return f"{method}-top{top}" + ("-no-temperature" if not temperature and method != "hard" else "") + suffix


def build_ensemble(study: optuna.Study, top: int = 5, method: str = "soft", temperature: bool = True,
                   tta: str | None = "auto", rounds: int = 25, save: bool = True, name: str | None = None,
                   overwrite: bool = False, deadline: float | None = None, metric: str | None = None) -> EnsembleResult:
    """Combine the ``top`` best trials of ``study`` (by val ``metric``) and evaluate on its test split.

    The candidates are the trials that saved one epoch's weights with val and
    test probabilities (see :func:`candidates`); with fewer than ``top`` the
    ensemble uses those, with a warning.  Selection (the members, greedy
    weights, the best single member, temperatures, and with ``tta="auto"``
    which test-time augmentation of :data:`~autocls.inference.TTA_MODES` is
    used) uses the val probabilities only, scored by ``metric`` (default: what
    the study ranks its trials by, :func:`ranking_metric`); the test split is
    touched once, to report.  ``deadline`` (a ``time.time()``) bounds the
    recomputations of ``tta="auto"``: a mode that would end later is not
    tried, and ``result.extra["tta_choice"]`` says so.  With ``save``
    the ensemble is written to ``<study folder>/ensembles/<name>/`` (default
    :func:`ensemble_name`) for :func:`load_ensemble`; an existing one is
    replaced only with ``overwrite``.

    ``temperature`` fits each member's temperature on val before the vote
    (Guo et al. 2017): a member's top-1 stays, its probabilities come to mean
    what they say, and members trained with and without label smoothing vote
    on one scale.  Hard voting counts votes, which no temperature changes, and
    fits none.  ``tta`` is ``"auto"`` by default too, as in a search's closing
    ensemble; ``"none"`` (or None) shows each image once.

    Example:
        >>> result = build_ensemble(study, top=5, method="greedy")  # doctest: +SKIP
        >>> result.test["top1"] >= result.best_member_test["top1"]  # doctest: +SKIP
        True
        >>> result.extra["tta"], result.extra["tta_choice"]  # doctest: +SKIP
        ('flip-translate', 'TTA by val top-1: none 85.62%, flip 86.10%, flip-translate 86.04%; the most views within a standard error (0.49%) of the highest: flip-translate used')
    """
    if method not in METHODS:
        raise UserError(f"unknown --method '{method}'; choose from {', '.join(METHODS)}")
    if tta not in (None, *TTA_CHOICES):
        raise UserError(f"unknown --tta '{tta}'; choose from {', '.join(TTA_CHOICES)}")
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    if name is not None:
        check_folder_name(name, "--name")  # a folder under the study's ensembles/, never out of it
    metric = metric or ranking_metric(study)
    ranking_metric_named(metric)  # a bad name fails before the data is read
    data = study_data(study, at_trials_image_size=True)  # the trials' test probabilities are of those images
    val_y, test_y = data.val_y.numpy(), data.test_y.numpy()
    members, problems = candidates(study, val_y, metric)
    members, unloadable = loadable(members, top, data.num_classes, data.image_shape[0])
    for line in problems + unloadable:
        warnings.warn(f"left out of the ensemble: {line}", stacklevel=2)
    if not members:
        raise UserError(f"study '{study.study_name}' has no trial with saved weights and val/test probabilities yet")
    if len(members) < top:
        warnings.warn(f"study '{study.study_name}' has {len(members)} trial(s) with saved probabilities, fewer than "
                      f"--top {top}: the ensemble uses those {len(members)}", stacklevel=2)
    folder = Path(study.user_attrs.get("folder", ""))
    if tta in TTA_MODES and tta != "none":
        _recompute_with_tta(members, data, tta)
    for m in members:
        if m.test_probs.shape[0] != len(test_y):
            raise UserError(f"trial {m.number}'s saved probabilities do not match the study's split")
    temperature = temperature and method != "hard"
    result = _vote(members, method, temperature, rounds, val_y, test_y, metric)
    result.extra.update(tta=tta if tta in TTA_MODES else "none", classes=data.classes, metric=metric)
    if tta == "auto":
        result = _with_best_tta(result, temperature, rounds, data, deadline, metric)
    result.extra["below_its_best"] = below_its_best(result, len(val_y))
    # a class never predicted hides behind top-1 (a long-tailed split's rarest): the print shows the weakest
    result.extra["per_class_test"] = weakest_classes(result.test_probs, test_y, data.classes,
                                                     k=min(3, data.num_classes - 1))
    if save:
        name = name or ensemble_name(method, top, temperature, tta)
        result.folder = _save(result, folder / ENSEMBLES_FOLDER / name, data, overwrite)
    return result


def _vote(members: list[Member], method: str, temperature: bool, rounds: int, val_y: np.ndarray,
          test_y: np.ndarray, metric: str) -> EnsembleResult:
    """Weights chosen on val ``metric`` (and temperatures with ``temperature``), the vote scored on val and test."""
    for m in members:
        m.temperature = fit_temperature(m.val_probs, val_y) if temperature else 1.0
    val_probs = [apply_temperature(m.val_probs, m.temperature) for m in members]
    test_probs = [apply_temperature(m.test_probs, m.temperature) for m in members]
    weights = greedy_or_even(val_probs, val_y, rounds, metric) if method == "greedy" else np.ones(len(members))
    vote = hard_vote if method == "hard" else soft_vote
    val_ens, test_ens = vote(val_probs, weights), vote(test_probs, weights)
    best = int(np.argmax([RANKING_METRICS[metric].score(p, val_y) for p in val_probs]))  # chosen on val, like all else
    votes = method == "hard"
    return EnsembleResult(method, members, weights, summary(val_ens, val_y, votes), summary(test_ens, test_y, votes),
                          summary(val_probs[best], val_y), summary(test_probs[best], test_y), members[best].number,
                          test_ens, test_probs[best])


def below_its_best(result: EnsembleResult, n_val: int) -> str | None:
    """A note where an even vote scores below its best member on val by more than val's standard error, else None.

    Soft and hard voting weigh every member alike, and one much weaker than the others pulls the vote below the
    best of them: after a 5-minute CIFAR-10 search, ``build-ensemble --top 5`` soft-voted its 8-epoch trial (86.92%
    on test) with a 1-epoch one (62.55% on val) to 84.94%, where the search's own closing ensemble, by greedy
    selection, kept the first alone.  Greedy selection (``method="greedy"``) gives way to the best member there,
    so the note is for the even votes only.

    Example:
        >>> from types import SimpleNamespace
        >>> result = SimpleNamespace(method="soft", members=[None, None], best_member=0, extra={"metric": "accuracy"},
        ...                          val={"top1": 0.8482}, best_member_val={"top1": 0.8612})
        >>> print(below_its_best(result, n_val=5000))
        on val this soft vote scores 84.82%, below trial #0 alone (86.12%) by more than val's standard error (0.49%): ...
        >>> below_its_best(result, n_val=500) is None  # 1.5 points are within the noise of 500 images
        True
    """
    if result.method == "greedy" or len(result.members) < 2:
        return None
    metric = RANKING_METRICS[result.extra["metric"]]
    vote, best = result.val[metric.summary_key], result.best_member_val[metric.summary_key]
    if within_standard_error(vote, best, n_val):
        return None
    return (f"on val this {result.method} vote scores {vote:.2%}, below trial #{result.best_member} alone "
            f"({best:.2%}) by more than val's standard error ({accuracy_standard_error(best, n_val):.2%}): weaker "
            f"members pull it down; --method greedy weighs the members by val and leaves out those that do not help")


def tta_by_val(scores: dict[str, float], n_val: int) -> tuple[str, float]:
    """The test-time augmentation to use, from each mode's val score (of those tried, cheapest first), and the
    standard error it allowed: the mode of the most views that scores within one standard error of the highest.

    More views scored higher on held-out photos in 17 of the 18 models measured (CIFAR-10 photos, 720 to 40,000
    training images), while a small val split moves in steps of whole images: on 80 val images the highest val
    score picked fewer views in 5 models of 6, and lost 1.40 points of test accuracy to this rule on average
    (``benchmarks/tta_modes.py``, 2026-12-03).  So val overrules the prior only by more than its noise,
    ``sqrt(p(1-p)/n)`` of the highest score ``p`` (5.6 points at 80 images, 0.4 at 5,000): enough for data
    that mirror images do hurt.

    Example:
        >>> mode, error = tta_by_val({"none": 0.475, "flip": 0.4375, "flip-translate": 0.45}, n_val=80)
        >>> mode, round(error, 4)
        ('flip-translate', 0.0558)
        >>> tta_by_val({"none": 0.95, "flip": 0.80, "flip-translate": 0.81}, n_val=400)[0]  # mirrors hurt
        'none'
    """
    best = max(scores.values())
    error = accuracy_standard_error(best, n_val)
    within = [mode for mode, score in scores.items() if within_standard_error(score, best, n_val)]
    return max(within, key=list(scores).index), error


def run_with_best_tta(run_folder: str | Path, data, deadline: float | None = None,
                      metric: str = "accuracy", tta_modes: bool = True) -> EnsembleResult:
    """A training run's best epoch (``autocls train``'s folder) as a one-member ensemble at the test-time
    augmentation val chooses and its temperature fitted at it, as a search's closing ensemble chooses its own.

    ``data`` is the run's split; ``deadline`` (a ``time.time()``) bounds the recomputations, as in
    :func:`build_ensemble`; without ``tta_modes`` the run keeps each image once (its temperature is fitted).
    ``autocls train`` keeps the choice in the run's record, and ``autocls predict`` of the run applies it:
    ``autocls train --time-budget 2m`` of airbench on the shared CIFAR-10 photos scored 82.4% on test shown each
    image once, and 84.1% with the flip TTA chosen on val in the seconds its budget kept for it; in 5 minutes 85.1%
    and 85.7% (``benchmarks/run_tta.py``).

    Example:
        >>> result = run_with_best_tta("runs/digits-airbench", prepare_data("digits"))  # doctest: +SKIP
        >>> result.extra["tta"], result.test["top1"]  # doctest: +SKIP
        ('none', 0.9916)
    """
    from autocls.artifacts import TrialArtifacts

    run = TrialArtifacts(Path(run_folder)).load_member()
    if run is None:
        raise UserError(f"'{run_folder}' holds no finished run with its best epoch's val and test probabilities")
    val_y, test_y = data.val_y.numpy(), data.test_y.numpy()
    if run.val_probs.shape[0] != len(val_y) or run.test_probs.shape[0] != len(test_y):
        raise UserError(f"'{run_folder}': its saved probabilities do not match the split given")
    val_acc = float((run.val_probs.argmax(1) == val_y).mean())
    member = Member(-1, run.weights_file, run.config, run.val_probs, run.test_probs, val_acc)  # no trial's number
    plain = _vote([member], "soft", True, 1, val_y, test_y, metric)
    plain.extra.update(tta="none", classes=data.classes, metric=metric, tta_choice="")
    return _with_best_tta(plain, True, 1, data, deadline, metric) if tta_modes else plain


def _with_best_tta(plain: EnsembleResult, temperature: bool, rounds: int, data,
                   deadline: float | None, metric: str) -> EnsembleResult:
    """The ensemble of ``plain``'s members with the test-time augmentation that val chooses (:func:`tta_by_val`).

    Flipping helps photos and hurts digits or text, so it is chosen on val
    like the weights.  Only the members ``plain`` kept are recomputed, each
    mode from the one before it (:data:`~autocls.inference.TTA_MODES`), as
    long as the next ends by ``deadline``.  Members that all trained without
    mirror flips (digits) are not shown mirror images, which every mode past
    ``none`` averages: they could win on a small val split only by chance.
    """
    import copy

    kept = [m for m, w in zip(plain.members, plain.weights) if w > 0]
    key = RANKING_METRICS[metric].summary_key
    voted_by_mode, have, not_tried = {"none": plain}, "none", ""
    modes = TTA_MODES[1:]
    if not any(m.config.get("flip", True) for m in kept):
        who = kept[0].label if len(kept) == 1 else "the members"
        modes, not_tried = (), f" ({', '.join(TTA_MODES[1:])} not tried: {who} trained without mirror flips)"
    for tta in modes:
        kept = [copy.copy(m) for m in kept]  # the ensemble of the mode before keeps its members' probabilities
        why_not = _recompute_with_tta(kept, data, tta, deadline, have=have)
        if why_not:
            not_tried = f" ({tta} not tried: {why_not})"
            break
        have = tta
        voted_by_mode[tta] = _vote(kept, plain.method, temperature, rounds, data.val_y.numpy(), data.test_y.numpy(),
                                   metric)
    scores = {mode: result.val[key] for mode, result in voted_by_mode.items()}
    mode, error = tta_by_val(scores, len(data.val_y))
    tried = ", ".join(f"{k} {v:.2%}" for k, v in scores.items())
    rule = f"; the most views within a standard error ({error:.2%}) of the highest" if len(scores) > 1 else ""
    chosen = voted_by_mode[mode]
    chosen.extra.update(tta=mode, classes=data.classes, metric=metric,
                        tta_choice=f"TTA by val {RANKING_METRICS[metric].label}: {tried}{not_tried}{rule}: {mode} used")
    return chosen


def study_data(study: optuna.Study, at_trials_image_size: bool = False):
    """The study's data, split as its trials saw it (the split file in the study folder); with
    ``at_trials_image_size``, its images at the space's fixed ``image_size`` where it has one, as every trial held
    them (256-px photos at the CPU preset's 32 px: 1/64 of the memory)."""
    from autocls.data import prepare_data

    space = SearchSpace.of_study(study)
    val_fraction = space.fixed.get("val_fraction", 0.1) if space else 0.1
    store = study_store(study)
    with store.fetched(SPLIT_FILE) as split_file:
        if split_file is None:
            raise UserError(f"study '{study.study_name}': its split file '{SPLIT_FILE}' is missing from {store.uri}")
        image_size = space.fixed.get("image_size") if space and at_trials_image_size else None
        return prepare_data(study.user_attrs["dataset"], study.user_attrs.get("data_dir"), val_fraction,
                            split_file=split_file, image_size=image_size)


def _recompute_with_tta(members: list[Member], data, tta: str, deadline: float | None = None,
                        have: str = "none") -> str | None:
    """Each member's val and test probabilities, ``have``'s (the trial's saved plain pass, or a mode before
    ``tta`` in :data:`~autocls.inference.TTA_MODES`), become ``tta``'s as ``predict_proba(tta=tta)`` computes
    them, running the model only on the views ``have`` lacks: flip reuses the saved plain pass (the closing
    ensemble of a 2-minute CIFAR search spent 13 of its 20 s running both), flip-translate the flipped one.

    With ``deadline`` (a ``time.time()``), every member's cost is estimated from one timed batch before any is
    recomputed: when all of them would end after the deadline, none is changed and the reason is returned.  (Probed
    one by one, a closing whose last member did not fit computed and threw away the views of the others.)

    A trial's views are kept with its files once computed (:meth:`~autocls.artifacts.TrialArtifacts.save_tta_probs`)
    and read from there after: after a 5-minute CPU search of CIFAR-10 photos, ``build-ensemble --tta
    flip-translate`` took 26.6 s, and 4.5 s with the views kept (``benchmarks/ensemble_views.py``, 2026-12-07).
    """
    from autocls.data.augment import BatchAugment
    from autocls.inference import load_trained_model, predict_proba, resolve_device, trained_precision, translated_views

    device = resolve_device("auto")
    added = TTA_MODES[TTA_MODES.index(have) + 1:TTA_MODES.index(tta) + 1]

    def views_of(m: Member):
        model = load_trained_model(m.config, m.weights_file, data.num_classes, data.image_shape[0], device)
        options = trained_precision(m.config, device)  # as the trial predicted, and as predict will
        normalize = BatchAugment(data.mean, data.std, image_size=m.config.get("image_size")).normalize

        def with_views(x: torch.Tensor, probs: np.ndarray) -> np.ndarray:
            """``probs`` of ``x`` (``have``'s) with the views of each added mode."""
            for mode in added:
                if mode == "flip":
                    mirrored = predict_proba(model, x, lambda b: normalize(b).flip(-1), **options).numpy()
                    probs = (probs + mirrored) / 2
                else:  # flip-translate: the shifted views with their mirrors
                    shifted = [predict_proba(model, x, lambda b, i=i: translated_views(normalize(b))[i], tta="flip",
                                             **options).numpy() for i in (0, 1)]
                    probs = probs / 2 + (shifted[0] + shifted[1]) / 4
            return probs
        return with_views

    kept = [m.artifacts.load_tta_probs(tta, m.epoch) if m.artifacts else None for m in members]
    unkept = [m for m, probs in zip(members, kept) if probs is None]
    views = [views_of(m) for m in unkept]
    if deadline is not None and unkept:
        needed = sum(_views_seconds(with_views, m, data) for with_views, m in zip(views, unkept))
        if time.time() + needed > deadline:
            who = unkept[0].label if len(unkept) == 1 else f"the {len(unkept)} members"
            return f"{who} would take ~{needed:.0f} s, {max(0.0, deadline - time.time()):.0f} s of the budget are left"
    for m, probs in zip(members, kept):
        if probs is not None:
            m.val_probs, m.test_probs = probs
    for with_views, m in zip(views, unkept):
        m.val_probs, m.test_probs = with_views(data.val_x, m.val_probs), with_views(data.test_x, m.test_probs)
        if m.artifacts is not None:
            try:
                m.artifacts.save_tta_probs(tta, m.val_probs, m.test_probs, m.epoch)
            except OSError:  # a store this user may only read (another's study, an object store's read-only key)
                pass  # computed again next time
    return None


def _views_seconds(with_views, member: Member, data) -> float:
    """Seconds ``with_views`` of ``member`` takes over val and test, timed on one batch of val."""
    probe = data.val_x[:256]
    # a small warm-up batch first: timed with the model's warm-up, 256 images doubled the estimate
    with_views(probe[:16], member.val_probs[:16])
    start = time.perf_counter()
    with_views(probe, member.val_probs[:len(probe)])
    return (time.perf_counter() - start) * (len(data.val_x) + len(data.test_x)) / max(1, len(probe))


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of the manifest's content (all but this digest): configs, classes, normalisation, weights."""
    import hashlib

    content = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _save(result: EnsembleResult, folder: Path, data, overwrite: bool) -> Path:
    from autocls import __version__

    if folder.exists() and not overwrite:
        raise UserError(f"ensemble '{folder}' exists; pass --overwrite to replace it, or --name for another")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "members").mkdir(parents=True)
    members = []
    for m, w in zip(result.members, result.weights):
        if w <= 0:
            continue  # greedy selection may leave members out
        target = tmp / "members" / f"trial-{m.number:05d}.safetensors"
        shutil.copyfile(m.weights_file, target)
        members.append({"trial": m.number, "weights_file": f"members/{target.name}", "sha256": sha256_file(target),
                        "weight": float(w), "temperature": m.temperature, "config": m.config, "val_acc": m.val_acc})
    manifest = {
        "format": FORMAT_VERSION, "autocls_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "method": result.method, "tta": result.extra["tta"], "classes": data.classes, "mean": list(data.mean),
        "std": list(data.std), "image_shape": list(data.source_shape), "members": members,
        "scores": {"val": result.val, "test": result.test, "best_member_val": result.best_member_val,
                   "best_member_test": result.best_member_test, "best_member": result.best_member},
    }
    manifest["content_sha256"] = manifest_digest(manifest)
    atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1))
    np.save(tmp / "test_probs.npy", result.test_probs)
    np.save(tmp / "best_member_test_probs.npy", result.best_member_test_probs)
    # Swap by renames: the folder is the old ensemble or the new one, and a crash
    # between the two renames leaves the old one beside it, never nothing.
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.replace(old)
    tmp.replace(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
