"""autocls: AutoML for image classification.

Example:
    >>> import autocls
    >>> result = autocls.train(autocls.TrainConfig(model="lenet", epochs=2), runtime=autocls.Runtime(dataset="digits"))
"""
from autocls.data import list_datasets, load_dataset, prepare_data
from autocls.errors import UserError
from autocls.models import create_model, list_models
from autocls.training import Runtime, TrainConfig, TrainResult, train

__version__ = "0.1.0"


def search(*args, **kwargs):
    """Run or resume a search; see :func:`autocls.search.run_search`. Imported lazily: Ray is heavy."""
    from autocls.search import run_search

    return run_search(*args, **kwargs)


__all__ = ["Runtime", "TrainConfig", "TrainResult", "UserError", "create_model", "list_datasets", "list_models", "load_dataset",
           "prepare_data", "search", "train", "__version__"]
