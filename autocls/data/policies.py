"""AutoAugment, RandAugment and TrivialAugment-Wide with every image drawing its own ops.

Written here because torchvision's v2 policies and kornia's ``auto`` policies
both draw one op (and magnitude) per call, so a batch given to them gets the
same op on every image, and calling them once per image costs Python per
image.  Here each image draws its own op, magnitude and sign; the batch is
grouped by op and each op runs once over its group with a per-image
magnitude tensor, so a step costs about one pass over the batch and one
host sync (the group sizes).

The op list, the magnitude tables and the CIFAR-10 AutoAugment sub-policies
are read from torchvision's classes, and each op reproduces torchvision's
uint8 kernel (nearest-neighbour affine with zero fill, ``_blend`` truncation),
so an image comes out as torchvision would have made it with the same draw;
``tests/test_policies.py`` checks that op by op.

Example:
    >>> policy = create_policy("trivialaugment")
    >>> policy(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)).shape
    torch.Size([8, 3, 32, 32])
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

POLICIES = ("randaugment", "trivialaugment", "autoaugment")


# --- ops: uint8 images (n, c, h, w) and one magnitude per image (n,) -> uint8 images ---------

def _blend(image: torch.Tensor, degenerate: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with a ratio per image: truncates to uint8 as it does."""
    # 1 - ratio in double, as torchvision's Python floats are: a grey pixel
    # blended with its own grey level must stay exactly on its integer level
    keep = ratio.double()
    ratio, rest = keep.float().view(-1, 1, 1, 1), (1.0 - keep).float().view(-1, 1, 1, 1)
    return torch.addcmul(image * ratio, degenerate, rest).clamp_(0, 255).to(torch.uint8)


def _grayscale(image: torch.Tensor) -> torch.Tensor:
    """Float luma, floored as torchvision does for uint8 input."""
    if image.shape[1] == 1:
        return image.float()
    r, g, b = image.float().unbind(1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(1).floor_()


def _affine(image: torch.Tensor, angle=0.0, translate_x=0.0, translate_y=0.0, shear_x=0.0, shear_y=0.0,
            corner_center: bool = False) -> torch.Tensor:
    """torchvision's tensor ``affine`` (nearest, zero fill) with per-image parameters.

    Angles in degrees; ``shear_*`` are the tangents torchvision's policies pass
    as ``degrees(atan(m))``; ``corner_center`` shears about the top-left corner
    as the policies' ShearX/ShearY do (``center=[0, 0]``).
    """
    n, _, h, w = image.shape
    zero = torch.zeros(n, device=image.device)
    angle, tx, ty, sx, sy = (v if torch.is_tensor(v) else zero + v for v in (angle, translate_x, translate_y,
                                                                             shear_x, shear_y))
    cx, cy = (-0.5 * w, -0.5 * h) if corner_center else (0.0, 0.0)
    # _get_inverse_affine_matrix, vectorised (scale 1): the inverse of T * C * R * SHy * SHx * C^-1
    rot, sx, sy = torch.deg2rad(angle), torch.atan(sx), torch.atan(sy)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * (cx + tx) - m1 * (cy + ty)
    m5 = cy - m3 * (cx + tx) - m4 * (cy + ty)
    theta = torch.stack([m0, m1, m2, m3, m4, m5], 1).view(n, 2, 3)
    # _affine_grid: pixel-centred base grid, theta rescaled to grid_sample's [-1, 1]
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=image.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=image.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=image.device)], -1)
    scale = torch.tensor([0.5 * w, 0.5 * h], device=image.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2) / scale).view(n, h, w, 2)
    out = F.grid_sample(image.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round_().to(torch.uint8)


def _rotate(image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    # torchvision's rotate passes -angle to the affine matrix
    return _affine(image, angle=-(m % 360))


def _sharpness(image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    if image.shape[-1] <= 2 or image.shape[-2] <= 2:
        return image
    c = image.shape[1]
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=image.device) / 13.0
    out = image.float()
    blurred = F.conv2d(out, kernel.expand(c, 1, 3, 3), groups=c).round_()
    inner = out[..., 1:-1, 1:-1]  # borders stay as they are, as in torchvision
    inner.add_((blurred - inner) * (-m).view(-1, 1, 1, 1))  # torchvision's alpha: 1 - factor = -m
    return out.clamp_(0, 255).to(torch.uint8)


def _posterize(image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    bits = m.trunc().long()
    mask = ((1 << bits) - 1) << (8 - bits)
    return image & mask.to(torch.uint8).view(-1, 1, 1, 1)


def _autocontrast(image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.autocontrast(image)  # already per image and per channel


def _equalize(image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.equalize(image)  # already per image and per channel


OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Identity": lambda x, m: x,
    "ShearX": lambda x, m: _affine(x, shear_x=m, corner_center=True),
    "ShearY": lambda x, m: _affine(x, shear_y=m, corner_center=True),
    "TranslateX": lambda x, m: _affine(x, translate_x=m.trunc()),
    "TranslateY": lambda x, m: _affine(x, translate_y=m.trunc()),
    "Rotate": _rotate,
    "Brightness": lambda x, m: _blend(x.float(), torch.zeros((), device=x.device), 1.0 + m.double()),
    "Color": lambda x, m: x if x.shape[1] == 1 else _blend(x.float(), _grayscale(x), 1.0 + m.double()),
    "Contrast": lambda x, m: _blend(x.float(), _grayscale(x).mean((1, 2, 3), keepdim=True), 1.0 + m.double()),
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": lambda x, m: torch.where(x >= (255.0 * m).view(-1, 1, 1, 1), 255 - x, x),
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": lambda x, m: 255 - x,
}


# --- policies --------------------------------------------------------------------------------

class BatchPolicy:
    """Base: op names, a magnitude table per image size, and ``_draw`` giving each image its ops.

    ``space`` is a torchvision ``_AUGMENTATION_SPACE``: op name ->
    (magnitudes(num_bins, height, width) or None, signed).
    """

    def __init__(self, space: dict, num_bins: int):
        self.ops = ["Identity"] + [name for name in space if name != "Identity"]
        self.space, self.num_bins = space, num_bins
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _table(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(magnitude[op, bin], signed[op]) for images of h x w."""
        key = (h, w, device)
        if key not in self._tables:
            rows, signed = [], []
            for name in self.ops:
                fn, sign = self.space.get(name, (lambda *_: None, False))
                values = fn(self.num_bins, h, w)
                rows.append(torch.zeros(self.num_bins) if values is None else values.float())
                signed.append(sign)
            self._tables[key] = (torch.stack(rows).to(device), torch.tensor(signed, device=device))
        return self._tables[key]

    def _magnitude(self, op: torch.Tensor, bin_: torch.Tensor, h: int, w: int) -> torch.Tensor:
        table, signed = self._table(h, w, op.device)
        m = table[op, bin_]
        flip = signed[op] & (torch.rand(len(op), device=op.device) <= 0.5)
        return torch.where(flip, -m, m)

    def _draw(self, n: int, h: int, w: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def _apply(self, x: torch.Tensor, op: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(op, minlength=len(self.ops)).tolist()  # the step's one host sync
        order = op.argsort()
        out = torch.empty_like(x)
        for name, idx in zip(self.ops, order.split(counts)):
            if len(idx):
                out[idx] = OPS[name](x[idx], m[idx])
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise TypeError(f"{type(self).__name__} expects uint8 images, got {x.dtype}")
        n, _, h, w = x.shape
        for op, m in self._draw(n, h, w, x.device):
            x = self._apply(x, op, m)
        return x


class BatchRandAugment(BatchPolicy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` uniform ops per image at a fixed magnitude bin."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31):
        from torchvision.transforms import v2

        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"RandAugment magnitude must be in [0, {num_magnitude_bins - 1}], got {magnitude}")
        super().__init__(v2.RandAugment._AUGMENTATION_SPACE, num_magnitude_bins)
        self.num_ops, self.magnitude = num_ops, magnitude

    def _draw(self, n, h, w, device):
        steps = []
        for _ in range(self.num_ops):
            op = torch.randint(len(self.ops), (n,), device=device)
            steps.append((op, self._magnitude(op, torch.full_like(op, self.magnitude), h, w)))
        return steps


class BatchTrivialAugmentWide(BatchPolicy):
    """TrivialAugment-Wide (Müller & Hutter 2021): one uniform op per image at a uniform magnitude bin."""

    def __init__(self, num_magnitude_bins: int = 31):
        from torchvision.transforms import v2

        super().__init__(v2.TrivialAugmentWide._AUGMENTATION_SPACE, num_magnitude_bins)

    def _draw(self, n, h, w, device):
        op = torch.randint(len(self.ops), (n,), device=device)
        return [(op, self._magnitude(op, torch.randint(self.num_bins, (n,), device=device), h, w))]


class BatchAutoAugment(BatchPolicy):
    """AutoAugment's learned CIFAR-10 policy (Cubuk et al. 2019): a sub-policy per image, each op
    applied with its own probability."""

    def __init__(self, policy: str = "cifar10"):
        from torchvision.transforms import v2

        tv = v2.AutoAugment(v2.AutoAugmentPolicy(policy))
        super().__init__(tv._AUGMENTATION_SPACE, 10)
        index = {name: i for i, name in enumerate(self.ops)}
        subs = tv._policies
        self.sub_op = torch.tensor([[index[name] for name, _, _ in sub] for sub in subs])
        self.sub_prob = torch.tensor([[p for _, p, _ in sub] for sub in subs])
        self.sub_bin = torch.tensor([[b or 0 for _, _, b in sub] for sub in subs])

    def _draw(self, n, h, w, device):
        if self.sub_op.device != torch.device(device):  # once: the tables live where the batches are
            self.sub_op, self.sub_prob, self.sub_bin = (t.to(device) for t in (self.sub_op, self.sub_prob, self.sub_bin))
        sub = torch.randint(len(self.sub_op), (n,), device=device)
        steps = []
        for j in range(self.sub_op.shape[1]):
            op = self.sub_op[sub, j]
            applied = torch.rand(n, device=device) <= self.sub_prob[sub, j]
            op = torch.where(applied, op, torch.zeros_like(op))  # 0 is Identity
            steps.append((op, self._magnitude(op, self.sub_bin[sub, j], h, w)))
        return steps


def create_policy(name: str | None, magnitude: int = 9) -> BatchPolicy | None:
    """A per-image batched policy by name (``none`` gives None)."""
    if name in (None, "none"):
        return None
    if name == "randaugment":
        return BatchRandAugment(num_ops=2, magnitude=magnitude)
    if name == "trivialaugment":
        return BatchTrivialAugmentWide()
    if name == "autoaugment":
        return BatchAutoAugment("cifar10")
    raise ValueError(f"unknown auto_augment policy '{name}'; choose from {('none',) + POLICIES}")
