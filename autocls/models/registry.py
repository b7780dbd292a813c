"""``create_model(name, num_classes, **kw)``: the model zoo by name, as timm does it.

Names are the CIFAR-adapted nets registered in this package, or ``timm/<name>``
for any timm model (``pretrained=True`` fine-tunes its ImageNet weights).
"""
from __future__ import annotations

import os
import socket
import warnings
from typing import Callable
from urllib.parse import urlparse

import torch.nn as nn

from autocls.errors import UserError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_RECIPES: dict[str, dict] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, recipe: dict | None = None):
    """Decorator: register ``fn`` under its function name; a name taken already (a built-in's) is replaced, with a
    warning.

    ``recipe`` holds the :class:`~autocls.training.TrainConfig` fields that
    the net trains with other than the defaults, which are a ResNet's
    (SGD at 0.05, cosine, batch 128): see :func:`model_recipe`.

    Example:
        >>> @register_model(recipe={"label_smoothing": 0.1})  # doctest: +SKIP
        ... def my_net(num_classes: int, in_chans: int = 3):
        ...     ...
    """

    def wrap(fn, stacklevel: int = 2):
        taken = _REGISTRY.get(fn.__name__)
        if taken is not None:
            # as timm's registry: replacing a built-in may be meant, but never silently
            warnings.warn(f"model '{fn.__name__}' is registered already (by {taken.__module__}); "
                          f"{fn.__module__}'s replaces it", stacklevel=stacklevel)
        _REGISTRY[fn.__name__] = fn
        _RECIPES[fn.__name__] = dict(recipe or {})
        return fn

    return wrap(fn, stacklevel=3) if fn is not None else wrap


def model_recipe(name: str) -> dict:
    """The recipe fields a registered model trains with other than the defaults; a dataset's and a run's own go on
    top (:func:`autocls.training.config.from_settings`).

    Example:
        >>> model_recipe("airbench")["scheduler"]  # airbench94's
        'triangle'
        >>> model_recipe("resnet18"), model_recipe("timm/resnet18")
        ({}, {})
    """
    return dict(_RECIPES.get(name, {}))


def list_models() -> list[str]:
    """The registered CIFAR-adapted models (``timm/<name>`` adds all of timm's)."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a model by name.

    Example:
        >>> m = create_model("resnet18", num_classes=10)
        >>> m = create_model("timm/resnet18", num_classes=10)  # timm's ImageNet ResNet-18
    """
    check_model_name(name)
    if name.startswith("timm/"):
        return _create_timm(name[len("timm/"):], num_classes, in_chans, pretrained, **kwargs)
    if pretrained:
        raise UserError(f"model '{name}' has no pretrained weights; use a timm model (timm/<name>) to fine-tune")
    if "width" in kwargs and not accepts_width(name):
        raise UserError(f"model '{name}' has no width multiplier; models with one: "
                        f"{', '.join(n for n in sorted(_REGISTRY) if accepts_width(n))}")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def model_from_config(config: dict, num_classes: int, in_chans: int = 3) -> nn.Module:
    """The model a TrainConfig mapping describes (name, width, pretrained), untrained weights.

    Example:
        >>> m = model_from_config({"model": "resnet9", "width": 0.5}, num_classes=10)
    """
    width = config.get("width", 1.0)
    return create_model(config["model"], num_classes, in_chans=in_chans, pretrained=config.get("pretrained", False),
                        **({"width": width} if width != 1.0 else {}))


def accepts_width(name: str) -> bool:
    """Whether the registered model ``name`` takes a ``width`` multiplier."""
    import inspect

    fn = _REGISTRY.get(name)
    return fn is not None and "width" in inspect.signature(fn).parameters


def check_model_name(name: str) -> None:
    """Raise :class:`UserError` unless ``name`` is a registered model or ``timm/<a timm model>``."""
    if name.startswith("timm/"):
        import timm

        if not timm.is_model(name[len("timm/"):]):
            raise UserError(f"unknown timm model '{name[len('timm/'):]}'; see timm.list_models()")
    elif name not in _REGISTRY:
        raise UserError(f"unknown model '{name}'; known: {', '.join(sorted(_REGISTRY))}, or timm/<any timm model>")


def _create_timm(name: str, num_classes: int, in_chans: int, pretrained: bool, **kwargs) -> nn.Module:
    import timm

    if pretrained and not _hub_reachable():
        # huggingface_hub would retry for a minute before failing; offline mode
        # still finds weights already in the local cache.
        import huggingface_hub.constants

        os.environ["HF_HUB_OFFLINE"] = "1"
        huggingface_hub.constants.HF_HUB_OFFLINE = True  # read at import time, so set it there too
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except Exception as exc:
        if pretrained:
            raise UserError(
                f"could not load pretrained weights for timm/{name} ({type(exc).__name__}: {str(exc)[:200]}); "
                f"offline machines need the weights in the Hugging Face cache (HF_HOME) first"
            ) from None
        raise


def _hub_reachable(timeout: float = 3.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
