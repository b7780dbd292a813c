"""autocls: AutoML for image classification.

Example:
    >>> import autocls
    >>> result = autocls.train(autocls.TrainConfig(model="lenet", epochs=2), runtime=autocls.Runtime(dataset="digits"))
    >>> study = autocls.run_search("digits", space="digits", n_trials=12)  # doctest: +SKIP
"""
from autocls.data import list_datasets, load_dataset, prepare_data
from autocls.errors import UserError
from autocls.models import create_model, list_models
# Not a function named `search`: importing the subpackage autocls.search (which the ensemble
# and report modules do) rebinds that name to the module, and `autocls.search(...)` then
# failed with "'module' object is not callable" (the README's Python API, as written).
from autocls.search import run_search
from autocls.training import Runtime, TrainConfig, TrainResult, train

__version__ = "0.1.0"

__all__ = ["Runtime", "TrainConfig", "TrainResult", "UserError", "create_model", "list_datasets", "list_models", "load_dataset",
           "prepare_data", "run_search", "train", "__version__"]
