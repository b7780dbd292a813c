"""``run_search``: one search session, new or resumed, driven by Ray Tune and recorded in Optuna."""
from __future__ import annotations

import fcntl
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from autocls.errors import UserError
from autocls.files import atomic_write_bytes, check_folder_name
from autocls.search.space import SearchSpace, preset_space
from autocls.search.samplers import create_sampler

if TYPE_CHECKING:
    from autocls.artifacts import ArtifactStore
    from autocls.data import DataSplits, RawDataset

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SMALL_MACHINE_CORES = 4  # up to this many cores and no GPU, a budgeted search runs one trial at a time on all


@dataclass
class StudyPaths:
    """Where a study keeps its files: the storage URL and a folder for splits, trials and Ray's logs."""

    name: str
    storage: str
    folder: Path

    @classmethod
    def default(cls, name: str, storage: str | None = None, root: str | Path = "studies") -> "StudyPaths":
        check_folder_name(name, "study name")  # it becomes a folder and a file name
        root = Path(root).resolve()
        return cls(name, storage or f"sqlite:///{root / name}.db", root / name)


def default_study_name(dataset: str) -> str:
    """The study name a search takes when given none: the dataset's name or its folder's, made a valid folder name.

    Example:
        >>> default_study_name("./my photos/")
        'my-photos'
        >>> len(default_study_name("x" * 300))
        100
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).name)[:100]  # check_folder_name's limit
    return name.strip("-._") or "study"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, else None."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage, with a clear error when the URL cannot be opened."""
    try:
        if (path := _sqlite_file(url)) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # sqlalchemy raises a dozen kinds for a bad URL; the OS others for a bad path
        detail = redact_url(str(exc).splitlines()[0][:200]) if str(exc) else ""
        raise UserError(f"cannot open storage '{redact_url(url)}': {type(exc).__name__}: {detail}") from None


def load_existing_study(name: str, storage: str | None = None) -> optuna.Study:
    """Load a study that must already exist (for build-ensemble, report); ``storage`` defaults to a search's.

    Example:
        >>> load_existing_study("digits")  # sqlite:///studies/digits.db  # doctest: +SKIP
    """
    storage = StudyPaths.default(name, storage).storage
    path = _sqlite_file(storage)
    if path is not None and not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.db")) if path.parent.exists() else []
        raise UserError(f"no study '{name}': '{path}' does not exist; studies in {path.parent}: {', '.join(known) or 'none'}")
    store = open_storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)]
    if name not in names:
        raise UserError(f"no study '{name}' in {redact_url(storage)}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=store)


@contextmanager
def _driver_lock(folder: Path):
    """One driver per study: a second one would re-run the first one's RUNNING trials."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "driver.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another autocls search is running this study (lock {folder / 'driver.lock'})") from None
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _prepare_ray_environment(address: str | None) -> None:
    """Ray's environment switches for this search, set before Ray is imported (it reads them once).

    * A machine-local Ray stays on loopback.  Ray binds its services to the
      host's network address even for a local instance (and rewrites
      127.0.0.1 to it), which exposes them to the network and breaks
      loopback-only clusters.  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is
      Ray's switch for a local-only Ray (its default on macOS and Windows).
    * A driver connecting to a cluster started with token authentication
      (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``)
      must use it too, which ``ray.init(address=...)`` does not do on its own:
      ``RAY_AUTH_MODE=token`` says so.

    A variable the user has set is left as it is; when Ray was already
    imported (an API caller), the first switch no longer takes, and Ray binds
    as it does by default.
    """
    from urllib.parse import urlparse

    host = urlparse(f"//{address}").hostname if address and address != "auto" else None
    if address is None or host in ("127.0.0.1", "localhost", "::1"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    token = os.environ.get("RAY_AUTH_TOKEN") or Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")).expanduser().is_file()
    if address is not None and token:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def _fitted_to_data(space: SearchSpace, dataset: str, train_images: int, image_side: int) -> str | None:
    """A line saying how trials fit the fields ``space`` does not set to the data (SearchSpace.trial_config); None
    where none changes."""
    from autocls.data.loader import passes_per_epoch
    from autocls.search.budget import configs

    fits: dict[str, list[str]] = {}
    for model in dict.fromkeys(c["model"] for c in configs(space)):
        values = {**space.fixed, "model": model}
        own, fitted = space.trial_config(values, dataset), space.trial_config(values, dataset, train_images, image_side)
        changes = []
        if fitted.image_size != own.image_size:
            fitted_side = fitted.image_size
            changes.append(f"images at {fitted_side}x{fitted_side}, the largest the zoo's nets are made for")
        if fitted.batch_size != own.batch_size:
            changes.append(f"batch {own.batch_size} -> {fitted.batch_size} (lr by the batch's square root)")
        if fitted.epoch_images != own.epoch_images:
            changes.append(f"{passes_per_epoch(train_images, fitted.epoch_images)} passes an epoch")
        if fitted.crop_padding != own.crop_padding:
            changes.append(f"crop padding {own.crop_padding} -> {fitted.crop_padding}")
        if changes:
            fits.setdefault(", ".join(changes), []).append(model)
    if not fits:
        return None
    how = "; ".join(f"{', '.join(models)}: {change}" for change, models in fits.items())
    side = space.fixed.get("image_size") or image_side  # the trainer crops after resizing to image_size
    return (f"space: its trials fit what it does not set to {train_images:,} training images of {side} pixels, "
            f"as `autocls train` does ({how}); a space's `fixed:` keeps its own")


def _absolute_dataset(dataset: str) -> str:
    # Ray runs each trial in its own working directory, so folder paths must be absolute.
    return str(Path(dataset).resolve()) if Path(dataset).exists() else dataset


def run_search(dataset: str | None = None, space: str | Path | SearchSpace | None = None, n_trials: int | None = 20,
               time_budget_s: float | None = None, sampler: str = "tpe", study_name: str | None = None,
               storage: str | None = None, studies_dir: str | Path = "studies", data_dir: str | None = None,
               address: str | None = None, cpus_per_trial: float | None = None, gpus_per_trial: float | None = None,
               max_failures: int = 0, seed: int = 0, num_cpus: int | None = None, show_progress: bool = True,
               max_concurrent: int | None = None, ensemble_top: int | None = 5,
               size_trials: bool = True, artifacts: str | None = None, metric: str | None = None,
               started_at: float | None = None) -> optuna.Study:
    """Run (or continue) a search and return the Optuna study.

    ``space`` is a shipped space's name, a YAML path or a
    :class:`SearchSpace`; None (the default) takes the preset that
    :func:`autocls.search.space.preset_space` picks for the dataset and this
    machine's GPUs, and says which.

    Running the same call again continues the study: finished trials are kept,
    trials that were interrupted are re-run first under their own numbers, and
    the sampler sees the whole history.  ``n_trials`` counts finished trials
    over all sessions.  ``time_budget_s`` bounds the whole call: running
    trials stop in time, keeping their best epoch (PRUNED, reason "time
    budget"), and the closing ensemble of the best ``ensemble_top`` trials
    (greedy selection on val; None: none) is built within it too.  With
    ``size_trials`` each trial's epochs are fitted to the budget from the
    measured speed of its model (see :mod:`autocls.search.budget`).
    ``artifacts`` is where trials leave their files (a folder or an object
    store URI, see :class:`autocls.artifacts.ArtifactStore`; default: the
    study folder): on a cluster without a shared filesystem, an object store
    that every node can reach.  ``metric`` replaces what the space ranks trials by (its first objective; the
    ensemble is selected by it too): ``"accuracy"`` (top-1) or ``"balanced_accuracy"``, the mean of the
    per-class accuracies, for classes of uneven size, with which the preset also trains with the logit-adjusted
    loss (``logit_adjustment: 1``, Menon et al. 2021).  ``started_at`` (a ``time.time()``, default: this call)
    is when the budget's clock started: ``autocls search`` gives its process's start, so that its budget counts
    the seconds of imports before this call too.

    Example:
        >>> import autocls
        >>> study = autocls.run_search("digits", space="digits", n_trials=12)  # doctest: +SKIP
        >>> best = study.best_trial.params  # doctest: +SKIP
    """
    started = min(started_at or time.time(), time.time())
    # Ray Tune's newer console output prints a results box even at verbose=0; the
    # live table below is this command's progress display.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # every input is checked before anything is written (and before Ray's few seconds of imports)
    _check_arguments(n_trials, time_budget_s, cpus_per_trial, gpus_per_trial, ensemble_top, max_concurrent, seed)
    space, dataset = _space_and_dataset(space, dataset, address, gpus_per_trial, n_trials,
                                        time_budget_s if size_trials else None, show_progress, metric)
    create_sampler(sampler, seed=seed, multi_objective=space.multi_objective)  # a bad name fails before any write
    if address is not None:
        _check_cluster_answers(address)
    if address is None and gpus_per_trial and gpus_per_trial > _local_gpus():
        raise UserError(f"--gpus-per-trial {gpus_per_trial:g}: this machine has {_local_gpus()} GPU(s)")
    if cpus_per_trial is None:
        cpus_per_trial = _default_cpus_per_trial(address, gpus_per_trial, num_cpus, time_budget_s is not None and size_trials)
        if cpus_per_trial > 1 and show_progress:
            print(f"trials: one at a time on all {cpus_per_trial:g} cores (a few cores, no GPU, a time budget); "
                  f"set --cpus-per-trial to change it", file=sys.stderr, flush=True)
    threads = max(1, int(cpus_per_trial))  # torch threads of a trial (and of the calibration)

    _prepare_ray_environment(address)
    import ray
    from ray import tune

    if address is not None:
        _join_ray(address, num_cpus)  # before the study is written: a cluster that cannot be joined leaves nothing

    from autocls.artifacts import SPLIT_FILE, ArtifactStore
    from autocls.data import check_splittable, class_imbalance, load_dataset
    from autocls.search.budget import TTA_ADDED_VIEWS, plan
    from autocls.search.progress import SearchProgress
    from autocls.search.scheduler import SeedKeepingASHA
    from autocls.search.cores import CoreHandOver
    from autocls.search.searcher import OptunaSearcher
    from autocls.search.trainable import run_trial

    dataset = _absolute_dataset(dataset)
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    reading = time.time()
    raw = load_dataset(dataset, data_dir)
    data_seconds = time.time() - reading  # the closing ensemble reads it again
    check_splittable(raw)  # before the study is written
    uneven = class_imbalance(raw) if show_progress else None
    if uneven and space.ranking_metric == "accuracy":
        print(f"note: the classes are uneven ({uneven}); trials are ranked by val top-1, in which a rare class "
              f"counts little: `--metric balanced_accuracy` ranks them by the mean of the per-class accuracies "
              f"(see the README's 'Long-tailed data')", file=sys.stderr, flush=True)
    elif uneven and not _corrects_for_class_prior(space):
        print(f"note: the classes are uneven ({uneven}) and the space's loss treats every image alike: "
              f"`logit_adjustment: 1` in its `fixed:` corrects for the class prior (see the README's "
              f"'Long-tailed data')", file=sys.stderr, flush=True)
    height, width = raw.images.shape[-2:]
    side = space.fixed.get("image_size")
    if side and (height, width) != (side, side) and show_progress:
        print(f"space: images of {width}x{height} train at {side}x{side}, its image_size", file=sys.stderr, flush=True)
    paths = StudyPaths.default(study_name or default_study_name(dataset), storage, studies_dir)
    store = open_storage(paths.storage)
    if artifacts is not None:
        artifacts = ArtifactStore(artifacts).uri  # a bad URI fails before any write; a folder's path made absolute

    with _driver_lock(paths.folder):
        study, artifact_store, new = _open_study(paths, store, space, dataset, data_dir, artifacts, sampler, seed)
        data = _study_split(raw, space, seed, paths, artifact_store)
        del raw
        measured = None
        if time_budget_s and size_trials:  # measured once per study: a resumed search sizes its trials the same way
            measured = _timed_models(study, space, data, threads, address, gpus_per_trial, show_progress)
        data_size = len(data.train_y), min(data.source_shape[1:])
        eval_images = len(data.val_y) + len(data.test_y)
        del data
        fitting = _fitted_to_data(space, dataset, *data_size)
        if fitting and show_progress:
            print(fitting, file=sys.stderr, flush=True)

        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED_STATES for t in trials)
        interrupted = [t for t in trials if t.state == TrialState.RUNNING]
        remaining = (n_trials - finished) if n_trials is not None else 10**6
        closing_deadline = started + time_budget_s - 5 if time_budget_s else None  # a few seconds kept for exiting
        if remaining <= 0:
            _close_finished_study(study, paths, n_trials, finished, ensemble_top, show_progress, closing_deadline)
            return study
        interrupted = interrupted[:remaining]
        if show_progress:
            kept = f"continued: {finished} finished trial{'s' * (finished != 1)} kept" + (
                f", {len(interrupted)} interrupted one{'s' * (len(interrupted) != 1)} run again" if interrupted else "")
            print(f"study '{paths.name}' in {redact_url(paths.storage)}, {'new' if new else kept}; watch it live "
                  f"with `optuna-dashboard {redact_url(paths.storage)}`", file=sys.stderr, flush=True)

        _join_ray(address, num_cpus)
        if gpus_per_trial is None:
            gpus_per_trial = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        _check_trial_fits(cpus_per_trial, gpus_per_trial)
        if max_concurrent is None:
            # As many trials as the cluster has slots now.  Also what lets Ray Tune
            # start that many at once: for a custom searcher without a limit it keeps
            # one trial pending, so slots fill one actor start-up at a time.
            max_concurrent = _slots(ray.cluster_resources(), cpus_per_trial, gpus_per_trial)
        progress = SearchProgress(study, n_trials, time_budget_s, enabled=show_progress, start=started,
                                  metric=space.ranking_metric)
        # The budget bounds the whole command: trials end by `trial_deadline`, which
        # leaves `closing_s` to stop Ray and build the ensemble; none starts later than `deadline`.
        closing_s = _closing_reserve(time_budget_s, ensemble_top, data_seconds=data_seconds,
                                     cluster=address is not None) if time_budget_s else 0.0
        trial_deadline = started + time_budget_s - closing_s if time_budget_s else None
        deadline = trial_deadline - 2 if trial_deadline else None
        # No trial can start: said without a plan of negative shares, and without Ray Tune, which, stopped as it
        # started, logged a traceback of its own state's upload racing its shutdown (`--time-budget 1s`)
        out_of_time = deadline is not None and time.time() >= deadline
        budget_plan = None
        if measured is not None and not out_of_time:
            def planned(until: float, closing_views: int = 0):
                return plan(space, measured, until - time.time(), max_concurrent, train_images=data_size[0],
                            eval_images=eval_images, closing_views=closing_views)

            budget_plan = planned(trial_deadline)
            members = _closing_members(budget_plan, space, trial_deadline - time.time(), max_concurrent,
                                       ensemble_top, dataset, data_size)
            if members:
                # the trials ending at the deadline keep the time of the closing's test-time augmentation, timed
                # by their own passes over val and test; the closing keeps only Ray's end and the vote
                closing_s = _closing_reserve(time_budget_s, ensemble_top, trials_keep_tta=True,
                                             data_seconds=data_seconds, cluster=address is not None)
                trial_deadline = started + time_budget_s - closing_s
                deadline = trial_deadline - 2
                budget_plan = planned(trial_deadline, closing_views=members * TTA_ADDED_VIEWS)
                if show_progress:
                    print(f"budget: trials that end at the budget's end keep time for the closing ensemble's test-time "
                          f"augmentation of up to {members} member{'s' * (members > 1)} ({TTA_ADDED_VIEWS} more "
                          f"passes over {eval_images:,} val and test images each), the last {closing_s:.0f} s for "
                          f"stopping them and the vote", file=sys.stderr, flush=True)
            if show_progress:
                print("\n".join(budget_plan.lines()), file=sys.stderr, flush=True)
            space = _narrowed_to_plan(space, budget_plan, study)
        if not out_of_time and not trials:  # new, or its sessions so far started none
            _enqueue_seeds(study, space, budget_plan, show_progress)  # sized by this session's plan
        cpus = None if gpus_per_trial else _single_node_cpus()
        searcher = OptunaSearcher(study, space, artifact_store,
                                  extra_config={"artifacts": artifact_store.uri, "split_key": SPLIT_FILE,
                                                "threads": threads},
                                  runtime={"dataset": dataset, "data_dir": data_dir, "seed": seed}, rerun=interrupted,
                                  deadline=deadline, on_change=progress.refresh,
                                  budget=remaining if n_trials is not None else None,
                                  cores=CoreHandOver(paths.folder / "cores", cpus, threads) if cpus else None,
                                  trial_deadline=trial_deadline, on_epoch=progress.epoch_done, plan=budget_plan,
                                  data_size=data_size)
        scheduler = SeedKeepingASHA(time_attr="epoch", max_t=space.max_epochs,
                                  grace_period=budget_plan.grace_period if budget_plan else space.grace_period,
                                  reduction_factor=space.reduction_factor, stop_would_idle=searcher.stop_would_idle)
        trainable = tune.with_resources(run_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = None if out_of_time else tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, metric=space.objectives[0],
                                        mode="max",
                                        num_samples=remaining, max_concurrent_trials=max_concurrent,
                                        reuse_actors=True),  # no new process (and torch import) per trial
            run_config=tune.RunConfig(name=f"session-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str(paths.folder / "ray"), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=max_failures),
                                      log_to_file=True),
        )
        ready = time.time()
        if tuner is not None:
            with progress, _ctrl_c_handler_kept():
                tuner.fit()
        # Every trial ends by the deadline on its own, so a trial still RUNNING here
        # was cut off by Ctrl-C: it stays RUNNING, and the same command continues it.
        unfinished = [] if out_of_time else study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if time_budget_s and not searcher.started and not unfinished:
            too_short = _budget_too_short(time_budget_s, ready - started, closing_s)
            if not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False)):
                raise UserError(too_short)  # nothing to show; the same command with more time runs the queued seeds
            print(f"note: {too_short}; the ensemble is of the trials of earlier sessions", file=sys.stderr)
        try:
            progress.final()
            leaderboard(study).to_csv(paths.folder / "leaderboard.csv", index=False)
            if not unfinished and ensemble_top:
                # what is left of the budget may go to TTA, when it helps on val
                _closing_ensemble(study, ensemble_top, show_progress, closing_deadline)
                sys.stdout.flush()  # Ray's exit handlers may end the process before Python flushes a redirected stdout
        except KeyboardInterrupt:
            if not unfinished:
                print(f"search interrupted after its trials ended: every trial is saved"
                      f"{_how_to_build_the_ensemble(paths.name, n_trials, ensemble_top)}", file=sys.stderr)
            raise
    if unfinished:
        # Ray Tune takes Ctrl-C and returns normally; say so, and keep Ctrl-C's meaning for callers.
        print(f"search interrupted: {len(unfinished)} trial(s) left unfinished; run the same command again to "
              f"continue them", file=sys.stderr)
        raise KeyboardInterrupt
    return study


def _join_ray(address: str | None, num_cpus: int | None) -> None:
    """This process joined to the cluster at ``address``, or to a Ray of its own (None), once."""
    import ray

    if ray.is_initialized():
        return
    # SIGTERM's handler is the program's: ray.init leaves one of Ray's C++ core that aborts the process with a
    # stack trace (exit code 134), over the command's own, which stops the search as Ctrl-C does
    sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        # "local": a Ray of our own, even when a `ray start` cluster runs on this machine
        ray.init(address=address or "local", num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=True, logging_level="ERROR")
    except ConnectionError as exc:  # something answers at the address, but not a Ray cluster this Ray can join
        raise UserError(f"--address {address}: {exc}") from None
    finally:
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113, 3.4): a gRPC server, as Ray's GCS and
# Ray Client are, answers with a SETTINGS frame of its own (frame type 4, the header's fourth byte) before anything
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def ray_address_file() -> Path:
    """The file where `ray start --head` leaves its cluster's address for ``ray.init(address="auto")``.

    ``ray.init``'s documentation names it, /tmp/ray/ray_current_cluster, under Ray's temporary folder
    (``$RAY_TMPDIR``, else ``$TMPDIR`` on Linux, else /tmp); `ray stop` deletes it, so one left behind by a
    cluster that ended otherwise (killed, or the machine restarted) names an address where nothing answers.
    """
    tmp = os.environ.get("RAY_TMPDIR") or (sys.platform.startswith("linux") and os.environ.get("TMPDIR")) or "/tmp"
    return Path(tmp) / "ray" / "ray_current_cluster"


def _check_cluster_answers(address: str) -> None:
    """One line at once where no Ray cluster answers at ``address``: ``ray.init`` tries again and again, logging
    each try, over five minutes where nothing listened at 127.0.0.1:6399 (and at the dead cluster that
    ``auto`` found in a stale :func:`ray_address_file`), 14 where an HTTP server did (a dashboard's port, say).

    'auto' is checked at ``RAY_ADDRESS``, else at the address in :func:`ray_address_file`; with neither,
    Ray looks for a cluster itself, or says at once that it found none.
    """
    found_in = ""
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "")
        if not target and (address_file := ray_address_file()).is_file():
            target = address_file.read_text().strip()
            found_in = f", the address `ray start` left in {address_file}"
    host, sep, port = target.split("://", 1)[-1].rpartition(":")  # host:port, or ray://host:port (Ray Client)
    if not sep or not port.isdigit():
        return
    where = f"--address {address}: no Ray cluster answers at {host}:{port}{found_in}"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as conn:
            conn.sendall(HTTP2_PREFACE)
            header = b""
            while len(header) < 4 and (chunk := conn.recv(9 - len(header))):  # TCP may hand it over in pieces
                header += chunk
    except OSError as exc:
        ended = ": that cluster ended without `ray stop`" if found_in else ""
        raise UserError(f"{where} ({exc.strerror or exc}){ended}; start one with `ray start --head`, or leave out "
                        f"--address to run on this machine") from None
    if len(header) < 4 or header[3] != 4:
        raise UserError(f"{where}: something else does (not gRPC); a cluster's address is its head's GCS port "
                        f"(`ray start --head` prints it, 6379 by default), not its dashboard's (8265)")


def _check_arguments(n_trials: int | None, time_budget_s: float | None, cpus_per_trial: float | None,
                     gpus_per_trial: float | None, ensemble_top: int | None, max_concurrent: int | None,
                     seed: int) -> None:
    """One line for the first bad argument of :func:`run_search`, before anything is written."""
    if n_trials is None and time_budget_s is None:
        raise UserError("give a budget: --trials N and/or --time-budget")
    if n_trials is not None and n_trials < 1:
        raise UserError(f"--trials must be >= 1, got {n_trials}")
    if time_budget_s is not None and time_budget_s <= 0:
        raise UserError(f"--time-budget must be > 0, got {time_budget_s}")
    if cpus_per_trial is not None and not cpus_per_trial > 0:
        raise UserError(f"--cpus-per-trial must be > 0, got {cpus_per_trial}")
    if gpus_per_trial is not None and gpus_per_trial < 0:
        raise UserError(f"--gpus-per-trial must be >= 0, got {gpus_per_trial}")
    if ensemble_top is not None and ensemble_top < 0:
        raise UserError(f"--ensemble-top must be >= 0, got {ensemble_top}")
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    if not 0 <= seed < 2**32:
        raise UserError(f"--seed must be in [0, 2**32), got {seed}")


def _space_and_dataset(space: str | Path | SearchSpace | None, dataset: str | None, address: str | None,
                       gpus_per_trial: float | None, n_trials: int | None, sizing_budget_s: float | None,
                       show_progress: bool, metric: str | None = None) -> tuple[SearchSpace, str]:
    """The space to search (the preset when none is given, with a line saying which and why), ranking trials by
    ``metric`` when given, and its dataset."""
    from autocls.data.registry import check_dataset

    preset = None
    if space is None:
        if not dataset:
            raise UserError("give a dataset, a space, or both")
        gpus = (_local_gpus() if address is None else 1) if gpus_per_trial != 0 else 0  # a cluster's GPUs are its own
        preset = preset_space(dataset, gpus)
        space = preset[0]
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    if metric:
        space = space.ranked_by(metric)
    if preset and space.ranking_metric == "balanced_accuracy" and not _corrects_for_class_prior(space):
        # ranked by balanced accuracy, the loss corrects for the class prior too: on a CIFAR-10-LT the logit-adjusted
        # loss lifted balanced test accuracy by 12 points, the class-balanced weights by 6 (benchmarks/long_tailed.py);
        # on even classes the offset is the same for every class, which changes nothing
        space = space.with_fixed({"logit_adjustment": 1.0})
        preset = (preset[0], f"{preset[1]}; ranked by balanced accuracy, its loss adjusted for the class prior")
    dataset = dataset or space.dataset
    if not dataset:
        raise UserError("no dataset given and the space names none")
    check_dataset(dataset)  # before the preset's line: a typo gets one line, the error
    if preset and show_progress:
        print(f"preset: space '{preset[0]}' ({preset[1]}); choose another with --space", file=sys.stderr, flush=True)
        if preset[0] == "cpu-small" and not sizing_budget_s:
            # the preset's epochs are a ceiling for a budget to size down; alone, on CIFAR-10's photos, a trial's
            # first epoch took 75 s on one core of a 2-core machine (24 epochs: half an hour), with no word of it
            trials = f"{n_trials} trial{'s' * (n_trials != 1)}" if n_trials else "unlimited trials"
            print(f"note: without --time-budget nothing sizes the trials: {trials} of up to "
                  f"{space.max_epochs} epochs, long on a CPU; with `--time-budget 20m` the search fits its trials to "
                  f"20 minutes and ends with the best model they allow", file=sys.stderr, flush=True)
    return space, dataset


def _corrects_for_class_prior(space: SearchSpace) -> bool:
    """Whether the space fixes or searches one of the recipe's corrections for classes of uneven size."""
    return bool({"class_weighting", "logit_adjustment", "weighted_sampling"} & (set(space.params) | set(space.fixed)))


def _open_study(paths: StudyPaths, storage: optuna.storages.BaseStorage, space: SearchSpace, dataset: str,
                data_dir: str | None, artifacts: str | None, sampler: str,
                seed: int) -> tuple[optuna.Study, ArtifactStore, bool]:
    """The study, new or continued (checked to be the same search), its artifact store, and whether it is new."""
    from autocls.artifacts import ArtifactStore

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its "[I ...] A new study created": the search says so itself
    try:
        study = optuna.create_study(study_name=paths.name, storage=storage, load_if_exists=True,
                                    directions=space.directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    # Seeded by the session as well as --seed: a resumed search with the seed of the
    # first session would replay its proposals (random search, TPE's start-up trials).
    study.sampler = create_sampler(sampler, seed=(seed + 7919 * len(study.trials)) % 2**32,
                                   multi_objective=space.multi_objective)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in space.directions]:
        raise UserError(f"study '{paths.name}' was created with other objectives; use another --study name")
    kept_space = SearchSpace.of_study(study)
    if kept_space and kept_space.ranking_metric != space.ranking_metric:
        raise UserError(f"study '{paths.name}' ranks its trials by {kept_space.ranking_metric}, not "
                        f"{space.ranking_metric}; continue it with --metric {kept_space.ranking_metric}, or use "
                        f"another --study name")
    # the split and the ensemble's images follow the first space (the study keeps it): another space of the same
    # study that holds the images otherwise would train trials that its ensemble then fed images of another size
    for key, default in (("image_size", None), ("val_fraction", 0.1)):
        if kept_space and (kept := kept_space.fixed.get(key, default)) != (asked := space.fixed.get(key, default)):
            kept, asked = ("unset (the data's own size)" if v is None else v for v in (kept, asked))
            raise UserError(f"study '{paths.name}' was started with {key} {kept}, which its split and its ensemble "
                            f"follow; this space has {asked}: use another --study name")
    stored = study.user_attrs.get("dataset")
    if stored and stored != dataset:
        raise UserError(f"study '{paths.name}' searches '{stored}', not '{dataset}'; use another --study name")
    if "uid" not in study.user_attrs:  # names this study's trial folders
        study.set_user_attr("uid", uuid.uuid4().hex[:8])
    known_store = study.user_attrs.get("artifacts")
    if stored and artifacts is not None and known_store and artifacts != known_store:
        raise UserError(f"study '{paths.name}' keeps its trials' files in {known_store}, not {artifacts}; "
                        f"leave out --artifacts to continue it")
    artifact_store = ArtifactStore(known_store or artifacts or paths.folder)
    if not known_store:
        study.set_user_attr("artifacts", artifact_store.uri)
    if not stored:
        study.set_user_attr("dataset", dataset)
        study.set_user_attr("data_dir", data_dir)
        space.keep_in(study)
        study.set_user_attr("folder", str(paths.folder))
    return study, artifact_store, not stored


def _study_split(raw: RawDataset, space: SearchSpace, seed: int, paths: StudyPaths,
                 artifact_store: ArtifactStore) -> DataSplits:
    """The study's train / val / test split, made once and kept in its folder and its artifact store, where the
    trials read it (a study continued on another machine keeps its split)."""
    from autocls.artifacts import SPLIT_FILE
    from autocls.data import make_splits

    split_file = paths.folder / SPLIT_FILE
    if not split_file.exists() and not artifact_store.is_local and (kept := artifact_store.read(SPLIT_FILE)):
        atomic_write_bytes(split_file, kept)
    # at the trials' image_size (the CPU preset's 32 px), as they hold it: 256-px photos split in 0.55x their size
    # of the process's own memory, not 1.48x (benchmarks/data_memory.py, the cache mapped)
    data = make_splits(raw, val_fraction=space.fixed.get("val_fraction", 0.1), seed=seed, split_file=split_file,
                       image_size=space.fixed.get("image_size"))
    if not artifact_store.exists(SPLIT_FILE):
        artifact_store.write(SPLIT_FILE, split_file.read_bytes())
    return data


def _timed_models(study: optuna.Study, space: SearchSpace, data, threads: int, address: str | None,
                  gpus_per_trial: float | None, show_progress: bool) -> dict:
    """Seconds an epoch of each model choice on this machine (the calibration), kept in the study.

    Each is timed once per study, so that a continued search sizes its trials as the first session did; a choice
    of a space that is new to the study is timed when it comes (a study continued with a space that added
    ResNet-9 to LeNet ran LeNet alone, without a word: its plan knew LeNet's time only).
    """
    from autocls.search.budget import config_key, configs, seconds_per_epoch

    known = study.user_attrs.get("seconds_per_epoch") or {}
    new = [config_key(c) for c in configs(space) if config_key(c) not in known]
    if not new:
        return known
    if show_progress:
        which = "each model" if not known else f"the model{'s' * (len(new) > 1)} new to the study ({', '.join(new)})"
        print(f"budget: timing an epoch of {which} on this machine", file=sys.stderr, flush=True)
    # timed where the trials will run: this machine's GPU when trials get one
    on_gpu = address is None and gpus_per_trial != 0 and _local_gpus() > 0
    try:
        measured = {**known, **seconds_per_epoch(space, data, threads=threads, device="cuda" if on_gpu else "cpu",
                                                 skip=known)}
    except KeyboardInterrupt:
        print("search interrupted while timing the models: no trial had started; the same command starts over"
              if not known else "search interrupted while timing the models new to the study; the same command "
              "times them again", file=sys.stderr)
        raise
    study.set_user_attr("seconds_per_epoch", measured)
    return measured


def _close_finished_study(study: optuna.Study, paths: StudyPaths, n_trials: int, finished: int,
                          ensemble_top: int | None, show_progress: bool, deadline: float | None) -> None:
    """The same command on a study with all its trials: what a session stopped before the end left undone."""
    if show_progress:
        print(f"study '{paths.name}' already has {finished} finished trials (budget {n_trials}); a larger "
              f"--trials searches further")
    if not (paths.folder / "leaderboard.csv").exists():  # a Ctrl-C came before the last session wrote it
        leaderboard(study).to_csv(paths.folder / "leaderboard.csv", index=False)
    if ensemble_top and not _has_closing_ensemble(study, ensemble_top, finished):
        # the session that finished them was stopped (Ctrl-C) or failed while building it
        if show_progress:
            print("building the ensemble its trials lack", file=sys.stderr, flush=True)
        try:
            _closing_ensemble(study, ensemble_top, show_progress, deadline)
        except KeyboardInterrupt:
            print("interrupted: run the same command again to build the ensemble", file=sys.stderr)
            raise
    elif ensemble_top and show_progress:
        print(f"its ensemble: {study.user_attrs['ensemble']}")


def _enqueue_seeds(study: optuna.Study, space: SearchSpace, budget_plan, show_progress: bool) -> None:
    """A new study's first trials: the space's known-good recipes, where the budget kept their model (at a
    width it kept)."""
    from autocls.search.scheduler import SEED_RECIPE

    for number, values in enumerate(space.seeds, 1):
        recipe = values if budget_plan is None else budget_plan.fitted_seed(values, space.fixed)
        if recipe is not None and recipe.get("width") != values.get("width") and show_progress:
            why = "more epochs of a narrower net" if recipe["width"] < values["width"] else \
                "one trial fills the budget: fewer epochs of a wider net"
            print(f"budget: seed recipe {number} at width {recipe['width']:g}, not {values['width']:g} ({why})",
                  file=sys.stderr, flush=True)
        if recipe is not None:
            study.enqueue_trial(recipe, user_attrs={SEED_RECIPE: True}, skip_if_exists=True)


def _how_to_build_the_ensemble(study_name: str, n_trials: int | None, ensemble_top: int | None) -> str:
    """After a Ctrl-C that came once the trials had ended: the command that builds the missing ensemble."""
    if ensemble_top and n_trials is not None:
        return "; run the same command again to build its ensemble"
    if ensemble_top:  # the same command would first search for another budget
        return (f"; `autocls build-ensemble --study {study_name} --top {ensemble_top} --method greedy --tta auto` "
                f"builds its ensemble")
    return ""


def _narrowed_to_plan(space: SearchSpace, budget_plan, study: optuna.Study) -> SearchSpace:
    """The space whose model and width choices are those the plan kept, so that the sampler proposes what may start.

    (When nothing fitted, the plan keeps the fastest width alone: a 5-minute search had 18 proposals of
    other widths PRUNED unstarted.)  Optuna refuses a categorical parameter whose choices change within a
    study, so a continued study keeps the choices its trials were drawn from, whatever this session's plan.
    """
    for name, kept in (("model", budget_plan.models), ("width", budget_plan.widths)):
        recorded = next((t.distributions[name] for t in study.get_trials(deepcopy=False) if name in t.distributions),
                        None)
        space = space.restricted_to_choices(name, list(recorded.choices) if recorded is not None else kept)
    return space


def _closing_members(budget_plan, space: SearchSpace, budget_s: float, slots: int, ensemble_top: int | None,
                     dataset: str | None, data_size: tuple) -> int:
    """The members whose test-time augmentation the closing ensemble may compute, where they are trials of the
    space's first seed recipe as the plan fits it (:meth:`~autocls.search.budget.BudgetPlan.closing_members`); 0
    without an ensemble, without a seed recipe the plan keeps, or where its trials train without mirror flips
    (the closing tries no TTA then)."""
    seed = budget_plan.fitted_seed(space.seeds[0], space.fixed) if space.seeds and ensemble_top else None
    if seed is None or not space.trial_config({**space.fixed, **seed}, dataset, *data_size).flip:
        return 0
    return budget_plan.closing_members({**space.fixed, **seed}, budget_s, slots, ensemble_top)


def _closing_reserve(budget_s: float, ensemble_top: int | None, trials_keep_tta: bool = False,
                     data_seconds: float = 4.0, cluster: bool = False) -> float:
    """Seconds kept at the end of a budget for stopping Ray's trials and building the ensemble; where the trials
    ending at the deadline keep the time of its test-time augmentation (``trials_keep_tta``:
    :meth:`~autocls.search.budget.BudgetPlan.closing_passes`), for the vote alone.

    The vote reads the study's images again (``data_seconds``: what reading them took as the search started) and
    weighs its members' saved probabilities (~1 s).  Ray Tune returns well under a second after the last trial
    ends (0.1-0.2 s in 2-minute CPU searches, 2026-12-07); on a cluster its trials' last results and ends cross the
    network.  Ray's exit (~4 s) falls in the seconds the search keeps for exiting, past this reserve.
    Measured on 2 CPU cores (2026-11-30, one CIFAR-10 trial): the ensemble's flip TTA takes ~1 s per 3,000 val and
    test images per member.  A 20-minute search kept 72 s for ~25 s of closing; a 2-minute one kept 8 s, and its
    ensemble went without flip TTA (worth 1.4 points on that run's val).  The ensemble's share was 2% (8-30 s) until
    2026-12-06, when flip-translate TTA (four more views a member; over flip on test, -0.1 to +0.4 points, +0.18 on
    average, in eight of the 20-minute benchmark's runs of its seed recipe) was left out for want of a second or
    two: ~12 s a member with 11 s left in a 20-minute search of two members, ~10 s with 9 s left in a 5-minute one
    of one; 2.5% of the budget (at most 45 s) gives it those seconds.  Until the data's time counted, 8 s for Ray
    and 8 s for the vote were kept whatever the data: a 1-minute search of 180 photos, its vote under a second,
    stopped its trials 20-27 s before the end (``benchmarks/short_budget.py``), and a 2-minute search of the shared
    CIFAR-10 photos used ~7 s of the 16 (2026-12-07).

    Example:
        >>> _closing_reserve(1200, ensemble_top=5), _closing_reserve(300, ensemble_top=5)
        (48.0, 16.5)
        >>> _closing_reserve(1200, ensemble_top=5, trials_keep_tta=True), _closing_reserve(120, 5, True, data_seconds=0.5)
        (18.0, 5.5)
        >>> _closing_reserve(300, ensemble_top=None), _closing_reserve(300, None, cluster=True)  # Ray's end only
        (3.0, 8.0)
    """
    ray_s = min(30.0, max(8.0 if cluster else 3.0, 0.01 * budget_s))
    if not ensemble_top:
        return ray_s
    vote_s = data_seconds + 2.0
    return ray_s + (vote_s if trials_keep_tta else min(45.0, vote_s + 0.025 * budget_s))


def _budget_too_short(budget_s: float, setup_s: float, closing_s: float) -> str:
    """Why no trial started in ``budget_s``, and the budget that would start one here.

    What a trial needs at least: the set-up this session took (data, timing the models, starting Ray),
    the end kept for the ensemble, a trial's start, and a few seconds of training; in whole minutes.
    A 30-second CIFAR-10 search on 2 CPU cores ended with an empty leaderboard and exit code 0
    (17 s of set-up, 16 s kept for the end; 2026-12-01).

    Example:
        >>> _budget_too_short(30, setup_s=17, closing_s=16)
        '--time-budget 30s: no trial could start: setting up took 17 s here and the end keeps 16 s; give it at least 1m'
    """
    from autocls.search.budget import TRIAL_START_S

    needed = math.ceil((setup_s + closing_s + TRIAL_START_S + 10) / 60)
    return (f"--time-budget {budget_s:g}s: no trial could start: setting up took {setup_s:.0f} s here and the end keeps "
            f"{closing_s:.0f} s; give it at least {needed}m")


@contextmanager
def _ctrl_c_handler_kept():
    """Python's Ctrl-C handler back after Ray Tune's run: Tune installs its own for the run and leaves it,
    so the first Ctrl-C after the run (while the closing ensemble was built) did nothing at all."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread has signal handlers (and Tune installs none from another)
        return
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


def _closing_name(top: int) -> str:
    from autocls.ensemble.build import ensemble_name

    return f"search-{ensemble_name('greedy', top)}"


def _has_closing_ensemble(study: optuna.Study, top: int, finished: int) -> bool:
    """Whether the study's closing ensemble of ``top`` was built, and built after its ``finished`` trials ended."""
    folder = study.user_attrs.get("ensemble")
    return (folder is not None and Path(folder).name == _closing_name(top) and Path(folder).is_dir()
            and study.user_attrs.get("ensemble_finished") == finished)


def _closing_ensemble(study: optuna.Study, top: int, show_progress: bool, deadline: float | None) -> None:
    """Greedy selection over every trial with saved probabilities, each member's temperature fitted on val, the TTA
    that helps most on val and ends by ``deadline``; the scores go to the console.

    The temperatures leave each member's top-1 as it is and make its probabilities mean what they say: the CPU
    preset trains with label smoothing 0.2, and a 2-minute CIFAR-10 search's ensemble was far less sure of its
    test predictions than they were right (ECE 0.211, NLL 0.651); fitted, ECE 0.015, NLL 0.451 (2026-12-05).
    """
    import warnings

    from autocls.ensemble.build import build_ensemble

    finished = sum(t.state in FINISHED_STATES for t in study.get_trials(deepcopy=False))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        try:
            result = build_ensemble(study, top=top, method="greedy", temperature=True, tta="auto", deadline=deadline,
                                    name=_closing_name(top), overwrite=True)
        except UserError as exc:
            print(f"no ensemble: {exc}", file=sys.stderr)
            return
    study.set_user_attr("ensemble", str(result.folder))
    study.set_user_attr("ensemble_finished", finished)  # a later command knows whether its trials have one
    if show_progress:
        from autocls.ensemble.cli import print_scores

        print_scores(result)


def _default_cpus_per_trial(address: str | None, gpus_per_trial: float | None, num_cpus: int | None,
                            budgeted: bool) -> float:
    """All cores for one trial at a time on a small CPU-only machine with a time budget, else 1.

    On a few cores, trials side by side each run at a fraction of the speed:
    the first model arrives that much later, and the last trials of a budget
    crawl on one core.  One trial at a time on every core finishes each sooner
    and sizes its epochs on the machine's full speed.  Many cores stay split:
    a small net's step does not scale to 16 threads.
    """
    cores = num_cpus or os.cpu_count() or 1
    uses_gpu = gpus_per_trial != 0 and (address is not None or _local_gpus() > 0)
    return float(cores) if budgeted and address is None and not uses_gpu and cores <= SMALL_MACHINE_CORES else 1.0


def _single_node_cpus() -> float | None:
    """The CPUs of a one-node Ray (this machine), else None: cores on other nodes can't be handed around."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    return alive[0]["Resources"].get("CPU") if len(alive) == 1 else None


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _check_trial_fits(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Fail at once when no node can ever run one trial (Ray would wait for it forever)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus_per_trial and r.get("GPU", 0) >= gpus_per_trial for r in nodes):
        most_cpus = max((r.get("CPU", 0) for r in nodes), default=0)
        most_gpus = max((r.get("GPU", 0) for r in nodes), default=0)
        raise UserError(f"no Ray node has room for one trial ({cpus_per_trial:g} CPU, {gpus_per_trial:g} GPU per trial); "
                        f"the largest node has {most_cpus:g} CPU and {most_gpus:g} GPU")


def _slots(resources: dict, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials of this size fit in ``resources`` (Ray's cluster_resources())."""
    fits = [resources.get("CPU", 0) / cpus_per_trial if cpus_per_trial else math.inf,
            resources.get("GPU", 0) / gpus_per_trial if gpus_per_trial else math.inf]
    return max(1, int(min(fits) + 1e-9))


def leaderboard(study: optuna.Study):
    """A pandas table of the study's trials, best first: each by its best epoch's val top-1, or balanced accuracy
    where the study ranks by it."""
    import pandas as pd

    from autocls.ensemble.build import ranking_metric
    from autocls.metrics import RANKING_METRICS

    ranked_by = RANKING_METRICS[ranking_metric(study)].best_key
    rows = []
    for t in study.get_trials(deepcopy=False):
        curve = list(t.intermediate_values.values()) or list(t.user_attrs.get("curve", {}).values())
        value = t.user_attrs.get("best_val_acc", max(curve) if curve else None)
        row = {"number": t.number, "state": t.state.name, "best_val_acc": value,
               **({ranked_by: t.user_attrs.get(ranked_by)} if ranked_by != "best_val_acc" else {}),
               "epochs": t.user_attrs.get("epochs_run"), "images_per_s": t.user_attrs.get("images_per_s"),
               "duration_s": t.duration.total_seconds() if t.duration else None}
        if t.values and len(t.values) > 1:
            row.update({f"objective_{i}": v for i, v in enumerate(t.values[1:], start=1)})
        row.update(t.params)
        if "reason" in t.user_attrs:
            row["reason"] = t.user_attrs["reason"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3, "WAITING": 4}
    frame["_rank"] = frame["state"].map(order)
    return frame.sort_values(["_rank", ranked_by], ascending=[True, False],
                             na_position="last").drop(columns="_rank").reset_index(drop=True)


def format_cell(value) -> str:
    """A leaderboard cell as text: 4 significant digits, empty for None or NaN."""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return "" if value is None else str(value)
