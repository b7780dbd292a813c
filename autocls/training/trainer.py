"""Train one config, top to bottom.

The whole uint8 dataset sits on the training device; each step slices a batch
by index and augments it there, so there is no DataLoader, no worker process
and no per-sample Python between the optimizer steps.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from autocls.data.augment import BatchAugment
from autocls.data.splits import DataSplits, prepare_data
from autocls.models import create_model
from autocls.training.config import TrainConfig
from autocls.training.losses import build_loss
from autocls.training.optim import build_optimizer, build_scheduler

WEIGHTS_FILE = "best.safetensors"
CHECKPOINT_FILE = "last.pt"


@dataclass
class TrainResult:
    """What a run leaves behind; ``status`` is ``complete`` or ``diverged``."""

    status: str
    best_val_acc: float
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    test_acc: float | None = None
    num_params: int = 0
    out_dir: str | None = None
    reason: str = ""
    resumed_from_epoch: int = 0


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _data_device(data: DataSplits, device: torch.device) -> torch.device:
    """The device the uint8 dataset lives on: the training device when it fits in half its free memory.

    Otherwise it stays in (pinned) host memory and each batch is sliced there
    and copied, so augmentation still runs on the GPU.
    """
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    size = sum(t.numel() * t.element_size() for t in (data.train_x, data.val_x))
    if size <= free // 2:
        return device
    data.train_x, data.val_x = data.train_x.pin_memory(), data.val_x.pin_memory()
    return torch.device("cpu")


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: torch.Tensor, normalize: Callable, batch_size: int = 512,
                  channels_last: bool = False, amp: bool = False, flip_tta: bool = False) -> torch.Tensor:
    """Class probabilities (float32, on CPU) for uint8 ``images`` (moved to the model's device per batch)."""
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


def save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    # contiguous(): channels_last conv weights are strided views, which safetensors refuses
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)


def save_checkpoint(path: Path, **state) -> None:
    """Atomic ``torch.save`` of tensors and plain data only (so ``weights_only=True`` can read it)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def train(cfg: TrainConfig, data: DataSplits | None = None, reporter: Callable[[dict], None] | None = None,
          out_dir: str | Path | None = None, resume: bool = False) -> TrainResult:
    """Train ``cfg`` and return its result; ``reporter(metrics)`` is called after every evaluation.

    With ``out_dir`` the best epoch's weights (safetensors) and val class
    probabilities are written as soon as that epoch ends, so a run stopped
    early (by ASHA, or killed) still leaves its best state; test
    probabilities are written when the run finishes.  Evaluated epochs also
    leave ``last.pt`` (model, optimizer, schedule, RNG; every epoch, or fewer
    when writing it would take more than ``cfg.checkpoint_share`` of training
    time); with ``resume`` a run whose ``out_dir`` holds one continues from there.

    Example:
        >>> from autocls.training import TrainConfig, train
        >>> result = train(TrainConfig(dataset="digits", model="lenet", epochs=2))
        >>> result.status
        'complete'
    """
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    data = data or prepare_data(cfg.dataset, cfg.data_dir, cfg.val_fraction, seed=0)
    out_dir = Path(out_dir) if out_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    on_cuda = device.type == "cuda"
    amp = cfg.amp and on_cuda
    channels_last = cfg.channels_last and on_cuda
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # --- model, data on the device, augmentation, loss, optimizer -------------------
    model = create_model(cfg.model, data.num_classes, in_chans=data.image_shape[0], pretrained=cfg.pretrained)
    model = model.to(device, memory_format=memory_format)
    num_params = sum(p.numel() for p in model.parameters())
    forward = torch.compile(model) if cfg.compile else model
    data_device = _data_device(data, device)
    train_x, train_y = data.train_x.to(data_device), data.train_y.to(data_device)
    val_x = data.val_x.to(data_device)
    augment = BatchAugment(data.mean, data.std, cfg.crop_padding, cfg.flip, cfg.cutout, cfg.auto_augment,
                           cfg.randaugment_magnitude, cfg.image_size)
    counts = torch.bincount(data.train_y, minlength=data.num_classes)
    criterion = build_loss(cfg.loss, counts.numpy(), cfg.class_weighting, cfg.class_balanced_beta, cfg.focal_gamma).to(device)
    mixup = None
    if cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha, prob=cfg.mixup_prob,
                      label_smoothing=cfg.label_smoothing, num_classes=data.num_classes)
    n = len(train_y)
    batch_size = min(cfg.batch_size, n - n % 2)  # timm's Mixup needs an even batch
    steps_per_epoch = n // batch_size  # drop_last: every step sees a full batch
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch)
    per_batch_schedule = not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    sample_weights = (1.0 / counts.float())[data.train_y].to(device) if cfg.weighted_sampling else None

    history: list[dict] = []
    best_acc, best_epoch, status, reason = -1.0, 0, "complete", ""
    result: TrainResult | None = None
    finished = False

    def finish() -> None:
        """Test probabilities of the best epoch (for the ensemble) and the run's record."""
        nonlocal result, finished
        finished = True
        test_acc = None
        if out_dir and (out_dir / WEIGHTS_FILE).exists() and status == "complete":
            load_weights(model, out_dir / WEIGHTS_FILE)
            probs = predict_proba(model, data.test_x, augment.normalize, channels_last=channels_last, amp=amp)
            np.save(out_dir / "test_probs.npy", probs.numpy())
            test_acc = float((probs.argmax(1) == data.test_y).float().mean()) if len(probs) else None
        result = TrainResult(status, max(best_acc, 0.0), best_epoch, len(history), history, test_acc, num_params,
                             str(out_dir) if out_dir else None, reason, start_epoch - 1)
        if out_dir:
            summary = {k: v for k, v in result.__dict__.items() if k != "history"}
            summary.update(classes=data.classes, mean=list(data.mean), std=list(data.std), image_shape=list(data.image_shape))
            (out_dir / "result.json").write_text(json.dumps(summary, indent=1))
            (out_dir / "history.json").write_text(json.dumps(history))
    start_epoch = 1
    checkpoint_cost, since_checkpoint = 0.0, 0.0  # the first evaluated epoch always writes one
    if resume and out_dir and (out_dir / CHECKPOINT_FILE).exists():
        state = torch.load(out_dir / CHECKPOINT_FILE, map_location=device, weights_only=True)  # never unpickles code
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())  # map_location moved it; the generator wants a CPU tensor
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)  # batch order is drawn on the GPU
        best_acc, best_epoch, history = state["best_acc"], state["best_epoch"], state["history"]
        start_epoch = state["epoch"] + 1
        if start_epoch > cfg.epochs:
            finish()  # stopped between the last checkpoint and its report
        # Report the restored epochs again: a report cut off by the interruption is
        # not lost, and a reporter that already has an epoch (the searcher) skips it.
        for metrics in history if reporter else []:
            reporter(metrics)
    for epoch in range(start_epoch, cfg.epochs + 1):
        # --- one epoch of training ---------------------------------------------------
        model.train()
        start = time.perf_counter()
        if sample_weights is not None:  # class-balanced sampling, with replacement
            order = torch.multinomial(sample_weights, n, replacement=True).to(data_device)
        else:
            order = torch.randperm(n, device=data_device)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            x, y = augment(train_x[idx].to(device, non_blocking=True)), train_y[idx].to(device, non_blocking=True)
            if mixup is not None:
                x, target = mixup(x, y)
            else:
                target = F.one_hot(y, data.num_classes).float()
                if cfg.label_smoothing:
                    target = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / data.num_classes
            x = x.contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = criterion(forward(x), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if per_batch_schedule:
                scheduler.step()
            loss_sum += loss.detach()
        train_loss = float(loss_sum) / steps_per_epoch  # one device sync per epoch
        epoch_time = time.perf_counter() - start
        since_checkpoint += epoch_time
        if not math.isfinite(train_loss):
            status, reason = "diverged", f"training loss became {train_loss} in epoch {epoch}"
            history.append({"epoch": epoch, "train_loss": train_loss, "diverged": True})
            if reporter:
                reporter({**history[-1], "val_acc": 0.0, "val_loss": float("inf"), "status": status, "reason": reason})
            break
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            continue

        # --- evaluation, best-epoch state, report -------------------------------------
        eval_start = time.perf_counter()
        probs = predict_proba(forward, val_x, augment.normalize, channels_last=channels_last, amp=amp)
        val_acc = float((probs.argmax(1) == data.val_y).float().mean())
        val_loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), data.val_y))
        if not per_batch_schedule:
            scheduler.step(val_acc)
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            if out_dir:
                save_weights(model, out_dir / WEIGHTS_FILE)
                np.save(out_dir / "val_probs.npy", probs.numpy())
        metrics = {
            "epoch": epoch, "val_acc": val_acc, "val_loss": val_loss, "train_loss": train_loss,
            "best_val_acc": best_acc, "epoch_time": epoch_time, "images_per_s": steps_per_epoch * batch_size / epoch_time,
            "lr": optimizer.param_groups[0]["lr"], "num_params": num_params,
            "eval_time": time.perf_counter() - eval_start,  # evaluation + best-epoch checkpoint
        }
        history.append(metrics)
        # last.pt is for resuming an interrupted run only, and a full write of
        # model + optimizer takes ~0.1-0.2 s for a ResNet-9 on CPU: written every
        # epoch it would cost a fast trial several percent.  So it is written when
        # the training time since the last write is at least write_time /
        # checkpoint_share: at most that share of training goes to it, and an
        # interruption loses at most write_time / checkpoint_share of training.
        due = cfg.checkpoint_share >= 1 or since_checkpoint * cfg.checkpoint_share >= checkpoint_cost
        if out_dir and due:
            written = time.perf_counter()
            save_checkpoint(out_dir / CHECKPOINT_FILE, epoch=epoch, model=model.state_dict(),
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            rng=torch.get_rng_state(), best_acc=best_acc, best_epoch=best_epoch, history=history,
                            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}))
            checkpoint_cost, since_checkpoint = time.perf_counter() - written, 0.0
        if epoch == cfg.epochs:
            # Before the last report: a scheduler (ASHA at max_t) may end the
            # process as soon as it has seen the final epoch.
            finish()
        if reporter:
            reporter(metrics)

    if not finished:  # diverged: no test probabilities, but the run's record
        finish()
    return result
