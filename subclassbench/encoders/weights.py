"""Weights files: safetensors or a torch checkpoint read with ``weights_only=True``, recorded by sha256."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subclassbench.core.hashing import sha256_file
from subclassbench.errors import SubclassbenchError, first_line


def weights_record(weights: str | Path | None) -> dict[str, Any] | None:
    """Path, sha256 and format of a weights file (recorded in results), or None."""
    if weights is None:
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise SubclassbenchError(f"weights file {path} not found; check the --weights path")
    fmt = "safetensors" if path.suffix == ".safetensors" else "torch"
    return {"path": str(path), "sha256": sha256_file(path), "format": fmt}


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read safetensors or a torch checkpoint (``weights_only=True``); strip DataParallel prefixes."""
    meta = weights_record(path)
    assert meta is not None
    path = Path(meta["path"])
    state: Any  # a file's contents: checked to be a state dict of tensors below
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise SubclassbenchError(f"{path} is not a valid safetensors file ({exc}); re-export the weights") from None
    else:
        try:
            with warnings.catch_warnings():  # torch warns on stderr about refused globals; our error says it
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or unsafe files
            first = first_line(exc, 100)
            raise SubclassbenchError(
                f"cannot read weights file {path} as safetensors or as a torch checkpoint loadable with "
                f"weights_only=True ({first}); convert it to .safetensors"
            ) from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]  # a training checkpoint: its model's state dict
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SubclassbenchError(f"{path} holds no state dict of tensors; save model.state_dict() instead")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, meta


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], where: str, spec: str) -> None:
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        shape = re.search(r"size mismatch for ([^:]+)", str(exc))
        detail = f"size mismatch for {shape.group(1)}" if shape else "incompatible tensors"
        raise SubclassbenchError(
            f"weights {where} do not fit {spec} ({detail}); check --model matches the file"
        ) from None
    # Old checkpoints predate BatchNorm's num_batches_tracked buffer; it is safe to lack.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise SubclassbenchError(
            f"weights {where} do not fit {spec}: {', '.join(parts)}; check --model matches the file"
        )


def check_one_weights_source(parsed: Any, meta: dict[str, Any] | None) -> None:
    """A weights file and a pinned hub revision cannot both name the weights."""
    if parsed.revision and meta is not None:
        raise SubclassbenchError(f"{parsed}: --weights FILE and a pinned @revision both name the weights; drop one")
