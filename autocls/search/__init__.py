"""Search: YAML spaces, Optuna samplers, ASHA on Ray Tune, studies in Optuna storage."""
from autocls.search.samplers import SAMPLERS, create_sampler
from autocls.search.space import SearchSpace, list_spaces


def run_search(*args, **kwargs):
    """See :func:`autocls.search.runner.run_search` (imported lazily: Ray is heavy)."""
    from autocls.search.runner import run_search as _run

    return _run(*args, **kwargs)


__all__ = ["SAMPLERS", "SearchSpace", "create_sampler", "list_spaces", "run_search"]
