"""Class probabilities of a model on uint8 images: used by training (val/test), the ensemble and predict."""
from __future__ import annotations

from typing import Callable

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: torch.Tensor, normalize: Callable, batch_size: int = 512,
                  channels_last: bool = False, amp: bool = False, flip_tta: bool = False) -> torch.Tensor:
    """Class probabilities (float32, on CPU) for uint8 ``images`` (moved to the model's device per batch).

    Example:
        >>> probs = predict_proba(model, data.test_x, BatchAugment(data.mean, data.std).normalize)
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    for chunk in images.split(batch_size):
        x = normalize(chunk.to(device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x).float()
            if flip_tta:
                logits = (logits.softmax(1) + model(x.flip(-1)).float().softmax(1)).log()
        out.append(logits.softmax(1).cpu())
    return torch.cat(out) if out else torch.empty(0)
