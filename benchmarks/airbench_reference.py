"""airbench94's recipe written by hand beside autocls's airbench seed, on the same real CIFAR-10 photos.

What the preset's seed should reach: the shared CIFAR-10 JPEGs split as in
``budget.py`` (40k / 5k / 5k), airbench94's net and recipe (Jordan 2024,
github.com/KellerJordan/cifar10-airbench) written out here in one loop, then
the ``cpu-small`` space's first seed trained by ``autocls.training.train`` for
the same epochs at the same width; both scored on the 5k test part, in one run.

    python benchmarks/airbench_reference.py --width 0.5 --epochs 9
    python benchmarks/airbench_reference.py --ablate ramped_average       # the reference without a part
    python benchmarks/airbench_reference.py --set lookahead=true --set ramped_average=false --set scheduler=onecycle

``--ablate`` drops one part of the reference (``ramped_average``, ``triangle``
for torch's cosine one-cycle, ``alternating_flip``, ``bias_decay``,
``whiten_bias_freeze``); ``--set`` overrides the seed's recipe fields.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _shared_data import split_cifar10  # noqa: E402

from autocls.data import prepare_data  # noqa: E402
from autocls.inference import fast_bf16  # noqa: E402
from autocls.search.space import SearchSpace  # noqa: E402
from autocls.training import Runtime, TrainConfig, train  # noqa: E402

PARTS = ("ramped_average", "triangle", "alternating_flip", "bias_decay", "whiten_bias_freeze")


class _Norm(nn.BatchNorm2d):
    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
    nn.init.dirac_(conv.weight.data[:cin])
    return conv


def _group(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout), nn.MaxPool2d(2), _Norm(cout), nn.GELU(),
                         _conv(cout, cout), _Norm(cout), nn.GELU())


def reference(data, width: float, epochs: int, ablate: str | None, batch_size: int = 1024) -> tuple[float, float]:
    """Test top-1 without and with flip TTA of airbench94's recipe, ``ablate`` left out."""
    torch.manual_seed(0)
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)
    train_x = (data.train_x.float() / 255 - mean) / std
    test_x = ((data.test_x.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
    widths = [round(c * width) for c in (64, 256, 256)]
    whiten = nn.Conv2d(3, 24, 2, bias=True)
    net = nn.Sequential(whiten, nn.GELU(), _group(24, widths[0]), _group(widths[0], widths[1]),
                        _group(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten(),
                        nn.Linear(widths[2], 10, bias=False)).to(memory_format=torch.channels_last)
    with torch.no_grad():  # the whitening filters: eigenvectors of the 2x2 patches' covariance
        nn.init.zeros_(whiten.bias)
        patches = train_x[::8][:5000].unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + 5e-4)[:, None]).reshape(-1, 3, 2, 2).flip(0)
        whiten.weight.copy_(torch.cat((filters, -filters)))
    whiten.weight.requires_grad_(False)

    def forward(x):
        return net(x) / 9

    # airbench's decoupled hyperparameters (per 1024 images, summed loss) in torch's terms
    momentum = 0.85
    lr = 11.5 / (1024 * (1 + 1 / (1 - momentum)))
    decay = 0.0153 * batch_size * lr / 11.5
    norms = [p for name, p in net.named_parameters() if p.requires_grad and isinstance(_owner(net, name), _Norm)]
    others = [p for p in net.parameters() if p.requires_grad and all(p is not q for q in norms)]
    bias_decay = 0.0 if ablate == "bias_decay" else decay / (64 * lr)
    optimizer = torch.optim.SGD([dict(params=norms, lr=64 * lr, weight_decay=bias_decay),
                                 dict(params=others, lr=lr, weight_decay=decay / lr)], momentum=momentum, nesterov=True)
    steps_per_epoch = len(train_x) // batch_size
    total = steps_per_epoch * epochs
    if ablate == "triangle":
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, [g["lr"] for g in optimizer.param_groups],
                                                       total_steps=total, pct_start=0.3, cycle_momentum=False)
    else:
        peak = int(0.23 * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.2 + 0.8 * s / peak if s <= peak
                                                     else 1 - 0.93 * (s - peak) / (total - peak))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    padded = F.pad(train_x, (2,) * 4, mode="reflect")
    flipped = torch.rand(len(train_x)) < 0.5  # alternating flips: each image flipped every other epoch
    padded = torch.where(flipped.view(-1, 1, 1, 1), padded.flip(-1), padded)
    average, step = None, 0
    for epoch in range(epochs):
        whiten.bias.requires_grad_(epoch < 3 or ablate == "whiten_bias_freeze")
        shifts = torch.randint(0, 5, (len(train_x), 2))
        images = torch.empty_like(train_x)
        for dy in range(5):
            for dx in range(5):
                chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                images[chosen] = padded[chosen, :, dy:dy + 32, dx:dx + 32]
        if ablate == "alternating_flip":
            images = torch.where((torch.rand(len(images)) < 0.5).view(-1, 1, 1, 1), images.flip(-1), images)
        elif epoch % 2:
            images = images.flip(-1)
        order = torch.randperm(len(images))
        net.train()
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast_bf16(torch.device("cpu"))):
                loss = loss_fn(forward(images[idx].contiguous(memory_format=torch.channels_last)),
                               data.train_y[idx]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if ablate != "ramped_average" and epoch >= 3 and step % 5 == 0:
                state = [t for t in net.state_dict().values() if t.is_floating_point()]
                if average is None:
                    average = [t.clone() for t in state]
                decay_now = 0.95 ** 5 * (step / total) ** 3
                with torch.no_grad():
                    for a, t in zip(average, state):
                        a.lerp_(t, 1 - decay_now)
                        t.copy_(a)
        with torch.no_grad():  # each epoch ends on the average
            for a, t in zip(average or [], [t for t in net.state_dict().values() if t.is_floating_point()]):
                t.copy_(a)
        print(f"  reference epoch {epoch + 1}/{epochs}: train loss {loss.item() / batch_size:.3f}", flush=True)
    net.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast_bf16(torch.device("cpu"))):
        plain = torch.cat([forward(x) for x in test_x.split(1000)]).float()
        mirrored = torch.cat([forward(x.flip(-1)) for x in test_x.split(1000)]).float()
    top1 = lambda logits: float((logits.argmax(1) == data.test_y).float().mean())  # noqa: E731
    return top1(plain), top1(plain + mirrored)


def _owner(net: nn.Module, name: str) -> nn.Module:
    return net.get_submodule(name.rsplit(".", 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--ablate", choices=PARTS, default=None, help="leave this part out of the reference")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of autocls's seed recipe")
    args = parser.parse_args()
    data = prepare_data(str(split_cifar10(Path(tempfile.mkdtemp(prefix="autocls-reference-")))))
    start = time.time()
    plain, flip = reference(data, args.width, args.epochs, args.ablate)
    reference_s = time.time() - start
    space = SearchSpace.load("cpu-small")
    overrides = dict(item.split("=", 1) for item in args.set)
    # one pass over the 40k images an epoch, as the reference (the space's epoch_images rounds to one pass too)
    cfg = TrainConfig.from_dict({**space.fixed, **space.seeds[0], "width": args.width, "epochs": args.epochs,
                                 **overrides})
    start = time.time()
    result = train(cfg, data, runtime=Runtime(), out_dir=tempfile.mkdtemp(prefix="autocls-seed-"))
    seed_s = time.time() - start
    label = f"reference{' without ' + args.ablate if args.ablate else ''}"
    print(f"\n{'run':40s} {'test':>7s} {'flip TTA':>9s} {'wall s':>7s}")
    print(f"{label:40s} {plain:7.2%} {flip:9.2%} {reference_s:7.0f}")
    print(f"{'autocls seed ' + ' '.join(args.set):40s} {result.test_acc:7.2%} {'':>9s} {seed_s:7.0f}")
    print(f"autocls seed - reference: {100 * (result.test_acc - plain):+.2f} points, "
          f"wall ratio {seed_s / reference_s:.2f}")


if __name__ == "__main__":
    main()
