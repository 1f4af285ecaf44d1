"""Preprocessing that travels with an encoder (timm's ``pretrained_cfg`` idea).

Data sources deliver float tensors in [0, 1] at the dataset's native size;
the encoder's :class:`Preprocessing` adapts channels, resizes the shorter side
to ``size / crop_pct``, centre-crops to ``input_size`` and normalises. All on
whole batches, so it adds little to a forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from subclassbench.errors import SubclassbenchError

INTERPOLATIONS = ("bilinear", "bicubic")
OVERRIDABLE = ("mean", "std", "input_size", "interpolation", "crop_pct")
MAX_INPUT_SIZE = 4096  # pixels per side: anything larger is a typo, and would exhaust memory


@dataclass(frozen=True)
class Preprocessing:
    """``input_size`` is C×H×W; ``None`` leaves flat vector inputs untouched."""

    input_size: tuple[int, int, int] | None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> Preprocessing:
        """The inverse of :meth:`to_dict` (JSON lists back to tuples); an unknown field raises ``TypeError``."""
        values: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in fields.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    def with_overrides(self, overrides: Mapping[str, Any]) -> Preprocessing:
        """This preprocessing with some fields replaced (``--preprocess KEY=VALUE``), each value checked.

        ``input_size`` may be one side (square), H×W or C×H×W; ``mean`` and ``std``
        one value for every channel or one per channel.
        """
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise SubclassbenchError(
                f"unknown preprocessing field '{unknown[0]}'; use {', '.join(OVERRIDABLE)} (e.g. --preprocess mean=0.5)"
            )
        if self.input_size is None:
            raise SubclassbenchError("this encoder takes vectors; --preprocess applies to image encoders")
        fields: dict[str, Any] = dict(overrides)
        channels = self.input_size[0]
        if "input_size" in fields:
            size = _numbers("input_size", fields["input_size"], integers=True)
            if len(size) not in (1, 2, 3) or any(not 0 < v <= MAX_INPUT_SIZE for v in size):
                raise SubclassbenchError(
                    f"--preprocess input_size must be 1 to 3 sizes between 1 and {MAX_INPUT_SIZE} (SIZE, H,W or "
                    f"C,H,W), got {fields['input_size']}"
                )
            if len(size) == 3 and size[0] not in (1, 3):
                raise SubclassbenchError(f"--preprocess input_size: {int(size[0])} channels; use 1 or 3")
            spatial = [int(v) for v in (size * 2 if len(size) == 1 else size[-2:])]
            channels = int(size[0]) if len(size) == 3 else channels
            fields["input_size"] = (channels, spatial[0], spatial[1])
        for key in ("mean", "std"):
            if key in fields:
                values = _numbers(key, fields[key])
                if len(values) == 1:
                    values = values * channels
                if len(values) != channels or (key == "std" and any(v <= 0 for v in values)):
                    wanted = "positive " if key == "std" else ""
                    raise SubclassbenchError(
                        f"--preprocess {key} needs one {wanted}value or {channels} {wanted}values (one per channel), "
                        f"got {fields[key]}"
                    )
                fields[key] = tuple(values)
        if "interpolation" in fields and fields["interpolation"] not in INTERPOLATIONS:
            raise SubclassbenchError(
                f"--preprocess interpolation must be {' or '.join(INTERPOLATIONS)}, got {fields['interpolation']!r}"
            )
        if "crop_pct" in fields:
            crop = _numbers("crop_pct", fields["crop_pct"])
            if len(crop) != 1 or not 0.05 <= crop[0] <= 1:
                raise SubclassbenchError(
                    f"--preprocess crop_pct must be one number in [0.05, 1], got {fields['crop_pct']}"
                )
            fields["crop_pct"] = crop[0]
        return replace(self, **fields)

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


def _numbers(key: str, value: Any, integers: bool = False) -> list[float]:
    """A number, a list of numbers or a comma-separated string of them; finite, and whole where ``integers``."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        try:
            number = float(item.strip()) if isinstance(item, str) else float(item)
        except (TypeError, ValueError):
            raise SubclassbenchError(f"--preprocess {key} takes numbers, got {value!r}") from None
        if isinstance(item, bool) or not math.isfinite(number) or (integers and number != int(number)):
            kind = "whole numbers" if integers else "finite numbers"
            raise SubclassbenchError(f"--preprocess {key} takes {kind}, got {value!r}")
        out.append(number)
    if not out:
        raise SubclassbenchError(f"--preprocess {key} needs a value")
    return out


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
