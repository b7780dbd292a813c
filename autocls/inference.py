"""Class probabilities of a model on uint8 images: used by training (val/test), the ensemble and predict."""
from __future__ import annotations

import functools
from typing import Callable

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds ``device`` up: GPUs, and CPUs with bf16 instructions.

    On a CPU with AVX512-BF16 or AMX, oneDNN runs bf16 convolutions about twice as
    fast as fp32 (ResNet-9 at half width trained 2.0x faster on a 2-core Zen 4, benchmarks/cpu_bf16.py);
    without them bf16 is emulated and slower, so fp32 stays.
    """
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _cpu_has_bf16()


def trained_precision(config: dict, device: torch.device) -> dict:
    """``predict_proba``'s layout and precision for a model trained with ``config`` on ``device``.

    What the trial itself predicted its test split with, so that an ensemble's
    predictions reproduce the probabilities its members saved.
    """
    return {"channels_last": config.get("channels_last", True), "amp": config.get("amp", True) and fast_bf16(device)}


def load_trained_model(config: dict, weights_file, num_classes: int, in_chans: int,
                       device: torch.device) -> torch.nn.Module:
    """A trained model ready to predict: built from its ``config``, its safetensors weights loaded, on ``device``
    in the memory layout it was trained and predicted in (see :func:`trained_precision`).

    Example:
        >>> device = resolve_device("auto")  # doctest: +SKIP
        >>> model = load_trained_model(config, "run/weights.safetensors", 10, 3, device)  # doctest: +SKIP
        >>> probs = predict_proba(model, images, normalize, **trained_precision(config, device))  # doctest: +SKIP
    """
    from autocls.artifacts import load_weights
    from autocls.models.registry import model_from_config

    # built without its pretrained weights, which the saved ones replace: fetching them took the Hugging Face hub
    # (and failed on a machine offline without them in its cache) for nothing
    model = model_from_config({**config, "pretrained": False}, num_classes, in_chans=in_chans)
    load_weights(model, weights_file)
    layout = torch.channels_last if trained_precision(config, device)["channels_last"] else torch.contiguous_format
    return model.to(device, memory_format=layout).eval()


@functools.cache
def _cpu_has_bf16() -> bool:
    # torch exposes this check only privately; Linux names the instructions in /proc/cpuinfo
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# Test-time augmentation, from the least to the most forward passes: each adds views to the one before.
TTA_MODES = ("none", "flip", "flip-translate")
TTA_PASSES = {"none": 1, "flip": 2, "flip-translate": 6}  # the forward passes over the images each mode takes


def translated_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` shifted one pixel up-left and one down-right (reflected at the border): airbench94's
    ``tta_level=2`` views, scored with their mirrors at a quarter weight each, the image and its mirror at half
    (:func:`predict_proba` with ``tta="flip-translate"``)."""
    height, width = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    return padded[..., :height, :width], padded[..., 2:, 2:]


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: torch.Tensor, normalize: Callable, batch_size: int = 512,
                  channels_last: bool = False, amp: bool = False, tta: str = "none") -> torch.Tensor:
    """Class probabilities (float32, on CPU) for uint8 ``images`` (moved to the model's device per batch).

    ``tta`` (one of :data:`TTA_MODES`): ``"flip"`` averages the probabilities of each image and its mirror
    (2 passes); ``"flip-translate"`` gives those half the weight and the mirrored pairs of
    :func:`translated_views` a quarter each (6 passes; over flip, +0.39 points on 5,000 held-out CIFAR-10
    photos on average, +0.18 to +0.62 in each of 7 airbench runs: ``benchmarks/tta_modes.py``, 2026-12-02).

    Example:
        >>> from autocls.data import load_dataset, make_splits
        >>> from autocls.data.augment import BatchAugment
        >>> from autocls.models import create_model
        >>> data = make_splits(load_dataset("digits"), val_fraction=0.1, seed=0)
        >>> model = create_model("lenet", num_classes=10, in_chans=1)
        >>> probs = predict_proba(model, data.test_x, BatchAugment(data.mean, data.std).normalize, tta="flip")
        >>> probs.shape, bool(probs.sum(1).allclose(torch.ones(len(probs))))
        (torch.Size([359, 10]), True)
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown tta '{tta}'; choose from {', '.join(TTA_MODES)}")
    model.eval()
    device = next(model.parameters()).device
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def probs(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x.contiguous(memory_format=layout))
        return logits.float().softmax(1)

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        return (probs(x) + probs(x.flip(-1))) / 2

    out = []
    for chunk in images.split(batch_size):
        x = normalize(chunk.to(device, non_blocking=True))
        if tta == "none":
            p = probs(x)
        elif tta == "flip":
            p = mirrored(x)
        else:
            up_left, down_right = translated_views(x)
            p = mirrored(x) / 2 + (mirrored(up_left) + mirrored(down_right)) / 4
        out.append(p.cpu())
    return torch.cat(out) if out else torch.empty(0)
