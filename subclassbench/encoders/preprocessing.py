"""Preprocessing that travels with an encoder (timm's ``pretrained_cfg`` idea).

Data sources deliver float tensors in [0, 1] at the dataset's native size;
the encoder's :class:`Preprocessing` adapts channels, resizes the shorter side
to ``size / crop_pct``, centre-crops to ``input_size`` and normalises. All on
whole batches, so it adds little to a forward pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Preprocessing:
    """``input_size`` is C×H×W; ``None`` leaves flat vector inputs untouched."""

    input_size: tuple[int, int, int] | None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is None or x.ndim != 4:
            return x
        channels, height, width = self.input_size
        x = _adapt_channels(x, channels)
        if x.shape[-2:] != (height, width) or self.crop_pct != 1.0:
            x = _resize_and_crop(x, height, width, self.crop_pct, self.interpolation)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def _adapt_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:  # grayscale into an RGB model: replicate
        return x.expand(-1, channels, -1, -1)
    if channels == 1:  # RGB into a grayscale model: ITU-R BT.601 luma
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x[:, :3] * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot adapt {x.shape[1]} input channels to {channels}")


def _resize_and_crop(x: torch.Tensor, height: int, width: int, crop_pct: float, interpolation: str) -> torch.Tensor:
    scale_size = math.floor(max(height, width) / crop_pct)
    h, w = x.shape[-2:]
    if h <= w:
        new_h, new_w = scale_size, max(scale_size, round(w * scale_size / h))
    else:
        new_h, new_w = max(scale_size, round(h * scale_size / w)), scale_size
    mode = "bicubic" if interpolation == "bicubic" else "bilinear"
    x = F.interpolate(x, size=(new_h, new_w), mode=mode, align_corners=False, antialias=new_h < h)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return x[:, :, top : top + height, left : left + width]
