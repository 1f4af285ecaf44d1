"""Weights files: safetensors or a torch checkpoint read with ``weights_only=True``, recorded by sha256."""

from __future__ import annotations

import json
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


# Keys of a safetensors file's metadata that describe how its weights must be used, and what they are checked
# against: the spec, the preprocessing, or the model's constructor arguments. Other keys (e.g. "format") are
# not claims about the run and are left alone.
METADATA_PREPROCESSING = ("mean", "std", "input_size", "interpolation", "crop_pct")
METADATA_CONSTRUCTOR = ("pad_type", "num_classes", "in_chans")
MAX_HEADER_BYTES = 100 << 20  # safetensors caps its own header at 100 MB


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (empty for other formats or files without it)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:  # the header's declared length is bounded before it is read
            length = int.from_bytes(handle.read(8), "little")
            if length > MAX_HEADER_BYTES:
                return {}
            header = json.loads(handle.read(length))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}  # not readable as safetensors: reading the weights themselves reports it
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        return {}
    return {str(k): v for k, v in metadata.items() if isinstance(v, str)}


def _same_numbers(claimed: str, used: Any) -> bool:
    """``"0.5,0.5,0.5"`` (or one value for every channel, or H,W against C×H×W) equals ``used``."""
    try:
        numbers = [float(part) for part in claimed.split(",") if part.strip()]
    except ValueError:
        return False
    values = [float(v) for v in (used if isinstance(used, list | tuple) else [used])]
    if len(numbers) == 1 and len(values) > 1 and len(set(values)) == 1:
        numbers = numbers * len(values)
    if len(numbers) == 2 and len(values) == 3:  # H,W claimed against C,H,W used
        values = values[1:]
    return len(numbers) == len(values) and all(abs(a - b) <= 1e-6 for a, b in zip(numbers, values, strict=True))


def metadata_mismatches(
    metadata: dict[str, str], spec: str, preprocessing: dict[str, Any], constructor_args: dict[str, Any]
) -> list[str]:
    """One sentence per claim of a weights file's metadata that this run does not follow, naming the fix."""
    out = []
    arch = metadata.get("arch")
    if arch is not None and arch not in (spec, spec.partition("@")[0], spec.partition("@")[0].partition(":")[2]):
        out.append(f"the weights file says it is for {arch}, but the model is {spec}; check --model")
    for key in METADATA_PREPROCESSING:
        if key not in metadata or preprocessing.get(key) is None:
            continue
        used = preprocessing[key]
        same = metadata[key] == str(used) if key == "interpolation" else _same_numbers(metadata[key], used)
        if not same:
            shown = ",".join(f"{v:g}" for v in used) if isinstance(used, list | tuple) else used
            out.append(
                f"the weights file says {key} {metadata[key]}, but this run uses {shown}; "
                f"pass --preprocess {key}={metadata[key]} if the file is right"
            )
    for key in METADATA_CONSTRUCTOR:
        if key in metadata and str(constructor_args.get(key, "")) != metadata[key]:
            used = constructor_args.get(key, "the model's default")
            out.append(
                f"the weights file says {key} {metadata[key]}, but the model was built with {key} {used}; "
                f"pass --model-arg {key}={metadata[key]} if the file is right"
            )
    return out
