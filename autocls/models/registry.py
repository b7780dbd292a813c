"""``create_model(name, num_classes, **kw)``: the model zoo by name, as timm does it.

Names are the CIFAR-adapted nets registered in this package, or ``timm/<name>``
for any timm model (``pretrained=True`` fine-tunes its ImageNet weights).
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from autocls.errors import UserError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """The registered CIFAR-adapted models (``timm/<name>`` adds all of timm's)."""
    from autocls.models import zoo  # noqa: F401  (registers the built-ins)

    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, in_chans: int = 3, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a model by name.

    Example:
        >>> m = create_model("resnet18", num_classes=10)
        >>> m = create_model("timm/resnet18", num_classes=10)  # timm's ImageNet ResNet-18
    """
    from autocls.models import zoo  # noqa: F401

    if name.startswith("timm/"):
        return _create_timm(name[len("timm/"):], num_classes, in_chans, pretrained, **kwargs)
    if name not in _REGISTRY:
        raise UserError(f"unknown model '{name}'; known: {', '.join(sorted(_REGISTRY))}, or timm/<any timm model>")
    if pretrained:
        raise UserError(f"model '{name}' has no pretrained weights; use a timm model (timm/<name>) to fine-tune")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def _create_timm(name: str, num_classes: int, in_chans: int, pretrained: bool, **kwargs) -> nn.Module:
    import timm

    if not timm.list_models(name) and name not in timm.list_models(pretrained=False):
        raise UserError(f"unknown timm model '{name}'; see timm.list_models()")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except Exception as exc:
        if pretrained:
            raise UserError(
                f"could not load pretrained weights for timm/{name} ({type(exc).__name__}: {str(exc)[:200]}); "
                f"offline machines need the weights in the Hugging Face cache (HF_HOME) first"
            ) from None
        raise
