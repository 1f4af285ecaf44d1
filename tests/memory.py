"""Helpers of the tests that measure memory (features/test_extraction.py, scoring/test_clusterability.py): an
18-layer wide stand-in encoder, and the peak bytes numpy and Python allocate while a call runs."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import torch
from torch import nn

from subclassbench.encoders.base import Encoder
from subclassbench.encoders.preprocessing import Preprocessing

N_LAYERS, WIDTH = 18, 256


def wide_encoder() -> Encoder:
    """An 18-layer stand-in: each layer maps the flattened 8×8 digit to 256 units (ResNet-like widths
    matter less than the count: memory must not scale with layers × images)."""
    torch.manual_seed(0)
    blocks = nn.ModuleList([nn.Linear(64, WIDTH) for _ in range(N_LAYERS)])

    class Wide(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = blocks

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return torch.stack([block(flat) for block in self.blocks]).mean(0)

    model = Wide()
    modules = {f"blocks.{i}": block for i, block in enumerate(blocks[:-1])}
    return Encoder("builtin:wide_standin", "builtin", "wide_standin", None, model, model, modules, Preprocessing(None))


def _peak(run: Callable[[], object]) -> int:
    """Peak bytes numpy (and Python) allocate while ``run`` runs; numpy reports its buffers to tracemalloc."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
