"""``autocls search`` and ``autocls spaces``."""
from __future__ import annotations

import re
import sys

from autocls.errors import UserError
from autocls.metrics import RANKING_METRICS


# A number and its unit, each part optional: "1h30m", "20min", "2 hours", "90" (seconds)
_DURATION = re.compile(r"\s*(?:(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h))?\s*(?:(\d+(?:\.\d+)?)\s*(?:minutes?|mins?|m))?"
                       r"\s*(?:(\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)?)?\s*", re.IGNORECASE)
# A clock's [h:]mm:ss, as a batch scheduler's time limit is written (Slurm's --time=1:30:00)
_CLOCK = re.compile(r"\s*(?:(\d+):)?(\d+):(\d{2}(?:\.\d+)?)\s*")


def parse_duration(text: str) -> float:
    """A duration in seconds, above zero (no budget is no flag, not '0s').

    Example:
        >>> [parse_duration(t) for t in ("90", "90s", "30m", "20 min", "2h", "1h30m", "1.5 hours", "1:30:00", "20:00")]
        [90.0, 90.0, 1800.0, 1200.0, 7200.0, 5400.0, 5400.0, 5400.0, 1200.0]
    """
    parts = _DURATION.fullmatch(text or "")
    if not parts or not any(parts.groups()):
        parts = _CLOCK.fullmatch(text or "")
    if not parts or not any(parts.groups()):
        raise UserError(f"--time-budget: cannot read '{text}'; use e.g. 90s, 30m, 2h, 1h30m or 1:30:00")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    if h * 3600 + m * 60 + s <= 0:
        raise UserError(f"--time-budget must be > 0, got '{text}'")
    return h * 3600 + m * 60 + s


def cmd_search(args) -> int:
    from optuna.trial import TrialState

    from autocls.search import run_search

    study = run_search(
        dataset=args.dataset, space=args.space, n_trials=args.trials,
        time_budget_s=parse_duration(args.time_budget) if args.time_budget is not None else None, sampler=args.sampler,
        study_name=args.study, storage=args.storage, data_dir=args.data_dir, address=args.address,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, max_failures=args.max_failures,
        max_concurrent=args.max_concurrent, seed=args.seed, ensemble_top=None if args.no_ensemble else args.ensemble_top,
        size_trials=not args.keep_epochs, artifacts=args.artifacts, metric=args.metric, started_at=args.started_at,
    )
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if failed and not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials):
        print(f"error: every trial failed; the first: {failed[0].user_attrs.get('reason', '')}"[:2000], file=sys.stderr)
        return 1
    return 0


def cmd_spaces(args) -> int:
    from autocls.search.space import SPACES_DIR, SearchSpace, list_spaces

    if args.action == "show":
        if not args.name:
            raise UserError("autocls spaces show NAME: give a space name")
        space = SearchSpace.load(args.name)
        print(space.source)
        return 0
    for name in list_spaces():
        space = SearchSpace.load(SPACES_DIR / f"{name}.yaml")
        print(f"{name:16s} {len(space.params):2d} params, up to {space.max_epochs:3d} epochs  {space.description}")
    return 0


def register(sub) -> None:
    from autocls.search.samplers import SAMPLERS

    p = sub.add_parser("search", help="search architectures and recipes",
                       description="Search a space with Optuna + ASHA on Ray Tune. Rerun the same command to resume.")
    p.add_argument("dataset", help="dataset name or ImageFolder path")
    p.add_argument("--space", help="space name (autocls spaces) or YAML path; default: the dataset's own")
    p.add_argument("--metric", choices=RANKING_METRICS,
                   help="what trials and the closing ensemble are ranked by on val: accuracy (top-1), or "
                        "balanced_accuracy (the mean of the per-class accuracies, for uneven classes; the preset "
                        "then adjusts the loss for the class prior). Default: the space's first objective (top-1)")
    p.add_argument("--trials", type=int, default=None, help="finished trials wanted, over all sessions (default 20)")
    p.add_argument("--time-budget", help="wall-clock budget of this session, e.g. 30m, 2h, 1h30m or 1:30:00")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="Optuna sampler proposing the trials (default tpe)")
    p.add_argument("--study", help="study name (default: the dataset's name)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--data-dir", help="where datasets are downloaded / found")
    p.add_argument("--address", help="Ray cluster address ('auto' joins a running cluster); default: a local one")
    p.add_argument("--artifacts", metavar="URI",
                   help="where trials leave weights, probabilities and checkpoints: a folder or an object store "
                        "(s3://bucket/prefix, gs://...; an S3-compatible server: "
                        "s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http); default: the study folder")
    p.add_argument("--cpus-per-trial", type=float, default=None,
                   help="default 1; with --time-budget on a machine of up to 4 cores and no GPU: all of them "
                        "(one trial at a time)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="1, 0.5, ... (default: 1 when GPUs exist)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once (default: as many as the cluster's CPUs/GPUs fit when the search starts)")
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose worker died")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the sampler and the trials (default 0)")
    p.add_argument("--ensemble-top", type=int, default=5,
                   help="at the end, vote the best K trials (greedy selection on val) and score them on test (default 5; "
                        "0: none, as --no-ensemble)")
    p.add_argument("--no-ensemble", action="store_true", help="skip the closing ensemble")
    p.add_argument("--keep-epochs", action="store_true",
                   help="with --time-budget: run the space's epochs as they are instead of fitting them to the "
                        "measured speed (trials still stop at the deadline)")
    p.set_defaults(func=_with_default_budget(cmd_search))

    s = sub.add_parser("spaces", help="list or show search spaces")
    s.add_argument("action", nargs="?", default="list", choices=["list", "show"])
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_spaces)


def _with_default_budget(fn):
    def wrapped(args):
        if args.trials is None and args.time_budget is None:
            args.trials = 20
        return fn(args)

    return wrapped
