"""What a forward pass hands back, checked before a single row is stored.

A researcher's module, ``embed`` function or plug-in encoder runs inside the forward pass, and it can
return anything: a dict, a numpy array, a scalar, one row too few, a different width in the last
batch. Unchecked, a short block would shift every later row onto another image's label, which is the
silent garbage a benchmark must not produce. So every layer's output is checked here, per batch: it is
a real-valued tensor (float16 and float64 are stored as float32, like every feature), it has one row
per image, and its width stays the same from batch to batch. Anything else is one line naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from subclassbench.core.limits import MAX_FEATURE_WIDTH
from subclassbench.errors import SubclassbenchError, first_line


def run_forward(spec: str, forward: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """``forward(x)`` with whatever it raises turned into one line naming the model.

    Our own errors pass through unchanged; anything else (the model's or an ``embed`` function's
    exception) is chained, so a Python caller still has its traceback in ``__cause__``.
    """
    try:
        return forward(x)
    except SubclassbenchError:
        raise
    except Exception as exc:
        shape = "x".join(str(d) for d in x.shape)
        if isinstance(exc, torch.OutOfMemoryError | MemoryError):
            raise SubclassbenchError(
                f"the forward pass of {spec} ran out of memory on a batch of shape {shape}; lower --batch-size "
                "(batch_size= in Python)"
            ) from exc
        raise SubclassbenchError(
            f"the forward pass of {spec} raised {type(exc).__name__} ({first_line(exc, 160)}) on a batch of shape "
            f"{shape}, dtype {str(x.dtype).removeprefix('torch.')}; fix the model or its embed function "
            "(call it on such a batch in Python to see the traceback), or its preprocessing"
        ) from exc


def output_tensor(value: object, what: str) -> torch.Tensor:
    """The tensor a layer or embedding returned (the first item of a tuple, as some blocks return), or a
    one-line error saying what came back instead and what to return."""
    if isinstance(value, tuple | list) and value:
        value = value[0]
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise SubclassbenchError(
                f"{what} returned a {str(value.dtype).removeprefix('torch.')} tensor; return real-valued features"
            )
        return value if value.is_floating_point() else value.float()  # integers: pooled (averaged) as floats
    if isinstance(value, Mapping):
        keys = ", ".join(repr(k) for k in list(value)[:6])
        raise SubclassbenchError(
            f"{what} returned a {type(value).__name__} (keys {keys}), not a tensor; return one tensor, "
            "e.g. embed=lambda x: model(x)[KEY]"
        )
    if isinstance(value, np.ndarray):
        raise SubclassbenchError(
            f"{what} returned a numpy array, not a torch tensor; return the tensor itself "
            "(torch.from_numpy(...) if it must be numpy inside)"
        )
    raise SubclassbenchError(f"{what} returned a {type(value).__name__}, not a tensor; return one row per image")


class BlockChecks:
    """Per-layer checks across the batches of one pass: rows per batch and a fixed width."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.widths: dict[str, tuple[int, int]] = {}  # layer → (width, batch where it was first seen)

    def check(self, layer: str, pooled: torch.Tensor, rows: int, batch: int) -> None:
        what = f"layer '{layer}' of {self.spec}"
        if pooled.ndim != 2 or pooled.shape[0] != rows:
            shape = "x".join(str(d) for d in pooled.shape) or "a scalar"
            raise SubclassbenchError(
                f"{what} gave features of shape {shape} for a batch of {rows} images (batch {batch}); "
                "a layer must give one row per image: check the embed function or drop the layer with layers="
            )
        width = int(pooled.shape[1])
        if width > MAX_FEATURE_WIDTH:  # refused on the first batch, before a row is stored or a probe fitted
            raise SubclassbenchError(
                f"{what} gives {width:,} features per image, more than the {MAX_FEATURE_WIDTH:,} a layer may have "
                "(docs/limits.md: probes hold images x width); pool it in the embed function or drop it with layers="
            )
        first = self.widths.setdefault(layer, (width, batch))
        if first[0] != width:
            raise SubclassbenchError(
                f"{what} gave {first[0]} features per image in batch {first[1]} but {width} in batch {batch}; "
                "every image must have the same width: make the model's output size independent of the batch"
            )
