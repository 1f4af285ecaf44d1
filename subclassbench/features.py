"""Feature extraction: every requested layer from one forward pass per batch.

Intermediate outputs are captured by forward hooks and pooled on the fly, so
memory is O(batch × layers × width) plus the pooled N × width matrices that
form the cacheable boundary between *extract* and *score*.

Pooling (protocol v1): CNN maps ``B×C×H×W`` → global average pool; token
sequences ``B×T×D`` → mean of the patch tokens, prefix (class/register)
tokens excluded; vectors ``B×D`` are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from subclassbench.cache import CacheStats, FeatureCache, feature_key
from subclassbench.datasources import ImageSet
from subclassbench.encoders import EMBEDDING, Encoder
from subclassbench.errors import SubclassbenchError

if TYPE_CHECKING:
    from subclassbench.tasks import SplitData

# Forward passes run by this process (batches): tests assert cache hits on it, not on time.
FORWARD_BATCHES = 0


@dataclass
class LayerFeatures:
    name: str
    depth: float
    pooling: str
    features: np.ndarray  # N × D float32


def pool(
    output: torch.Tensor | tuple | list, prefix_tokens: int, channels_last: bool = False
) -> tuple[torch.Tensor, str]:
    """Reduce one layer's output to a B×D matrix; returns it and the pooling used."""
    if isinstance(output, tuple | list):  # some blocks return (tensor, extras)
        output = output[0]
    if output.ndim == 4:
        return output.mean(dim=(1, 2) if channels_last else (2, 3)), "global_avg_pool"
    if output.ndim == 3:
        return output[:, prefix_tokens:].mean(dim=1), f"mean_tokens_excl_{prefix_tokens}_prefix"
    if output.ndim == 2:
        return output, "none"
    return output.flatten(1), "flatten"


def extract_features(
    encoder: Encoder,
    images: ImageSet,
    layers: list[str] | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> list[LayerFeatures]:
    """Run the encoder once over ``images`` and return pooled features per layer."""
    global FORWARD_BATCHES
    names = encoder.select_layers(layers)
    all_names = encoder.layer_names
    depth = {n: (all_names.index(n) / (len(all_names) - 1) if len(all_names) > 1 else 1.0) for n in names}
    captured: dict[str, torch.Tensor] = {}
    pooling: dict[str, str] = {}

    def hook_for(name: str):  # noqa: ANN202 - torch hook signature
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured[name], pooling[name] = pool(output, encoder.prefix_for(name), encoder.channels_last_maps)

        return hook

    handles = [encoder.layer_modules[n].register_forward_hook(hook_for(n)) for n in names if n != EMBEDDING]
    encoder.model.to(device).eval()
    out: dict[str, np.ndarray] = {}
    n = len(images)
    try:
        with torch.inference_mode():
            bar = tqdm(total=n, desc=f"extract {encoder.spec}", unit="img", disable=not progress or None, leave=False)
            for start in range(0, n, batch_size):
                index = np.arange(start, min(start + batch_size, n))
                x = encoder.preprocessing(images.load(index)).to(device)
                FORWARD_BATCHES += 1
                embedding = encoder.embed(x)
                if EMBEDDING in names:
                    captured[EMBEDDING], pooling[EMBEDDING] = pool(embedding, encoder.prefix_tokens)
                for name in names:
                    batch = captured.pop(name).float().cpu().numpy()
                    if name not in out:
                        out[name] = np.empty((n, batch.shape[1]), dtype=np.float32)
                    out[name][start : start + len(index)] = batch
                bar.update(len(index))
            bar.close()
    finally:
        for handle in handles:
            handle.remove()
    return [LayerFeatures(name, depth[name], pooling[name], out[name]) for name in names]


# --------------------------------------------------------------------------- cached extraction

# Bump when pooling or extraction changes what a cached feature matrix holds.
FEATURE_CODE_VERSION = "1"
DTYPE = "float32"


def _weights_identity(info: dict[str, Any]) -> str | None:
    weights = info.get("weights")
    return None if weights is None else weights.get("sha256")


def feature_fields(
    encoder: Encoder,
    split: SplitData,
    layer: str,
    rows: tuple[int, int] | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Everything that determines one layer's pooled features on one split (the cache key's content).

    Batch size and device are included: kernels may round differently with
    either, and the cache must not blur that. Hub weights without a file hash
    are identified by spec plus the version of the library that resolved them.
    """
    info = encoder.info()
    library = None
    if _weights_identity(info) is None and info["pretrained"] and info["source"] in ("timm", "open_clip"):
        from importlib import metadata

        dist = "timm" if info["source"] == "timm" else "open_clip_torch"
        library = f"{dist}=={metadata.version(dist)}"
    return {
        "feature_code": FEATURE_CODE_VERSION,
        "dtype": DTYPE,
        "encoder": {
            "spec": info["spec"],
            "pretrained": info["pretrained"],
            "weights_sha256": _weights_identity(info),
            "arch_kwargs": info.get("arch_kwargs") or {},
            "hub_library": library,
        },
        "batch_size": batch_size,
        "device": str(device),
        "preprocessing": info["preprocessing"],
        "decoding": None if split.decoding is None else split.decoding.to_dict(),
        "layer": layer,
        "pooling": {"prefix_tokens": encoder.prefix_for(layer), "channels_last": encoder.channels_last_maps},
        "split": split.fingerprint,
        "rows": None if rows is None else list(rows),
    }


def shard_rows(n: int, n_shards: int, index: int, batch_size: int) -> tuple[int, int]:
    """Contiguous sample range of shard ``index``; shard borders fall on batch borders so every batch
    (and so every feature) is the one an unsharded run computes."""
    if not 0 <= index < n_shards:
        raise SubclassbenchError(f"shard {index + 1}/{n_shards} does not exist; use 1..{n_shards}")
    n_batches = -(-n // batch_size)
    bounds = np.linspace(0, n_batches, n_shards + 1).round().astype(int)
    return min(int(bounds[index]) * batch_size, n), min(int(bounds[index + 1]) * batch_size, n)


def _depths(encoder: Encoder, names: list[str]) -> dict[str, float]:
    all_names = encoder.layer_names
    return {n: (all_names.index(n) / (len(all_names) - 1) if len(all_names) > 1 else 1.0) for n in names}


def _store(
    cache: FeatureCache,
    encoder: Encoder,
    split: SplitData,
    computed: list[LayerFeatures],
    rows: tuple[int, int] | None,
    batch_size: int,
    device: str,
) -> None:
    for layer in computed:
        fields = feature_fields(encoder, split, layer.name, rows, batch_size, device)
        extra = {"pooling": layer.pooling, "task": split.task.name, "split_name": split.split}
        cache.put(feature_key(fields), layer.features, fields, extra)


def extract_shard(
    encoder: Encoder,
    split: SplitData,
    layers: list[str] | None,
    index: int,
    n_shards: int,
    cache: FeatureCache,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = False,
    stats: CacheStats | None = None,
) -> None:
    """Extract one contiguous shard of a split into the cache (skipped when already there)."""
    names = encoder.select_layers(layers)
    rows = shard_rows(len(split), n_shards, index, batch_size)
    missing = [
        n for n in names if cache.get(feature_key(feature_fields(encoder, split, n, rows, batch_size, device))) is None
    ]
    if stats is not None:
        stats.hits += len(names) - len(missing)
        stats.misses += len(missing)
    if missing and rows[1] > rows[0]:
        subset = split.images.subset(np.arange(*rows))
        computed = extract_features(encoder, subset, missing, batch_size, device, progress)
        _store(cache, encoder, split, computed, rows, batch_size, device)


def _merge_shards(
    encoder: Encoder, split: SplitData, layer: str, n_shards: int, batch_size: int, device: str, cache: FeatureCache
) -> tuple[np.ndarray, dict[str, Any]] | None:
    parts, keys = [], []
    for index in range(n_shards):
        rows = shard_rows(len(split), n_shards, index, batch_size)
        if rows[1] == rows[0]:
            continue
        keys.append(feature_key(feature_fields(encoder, split, layer, rows, batch_size, device)))
        found = cache.get(keys[-1])
        if found is None:
            return None
        parts.append(found)
    array = np.concatenate([p[0] for p in parts])  # manifest order: shards are contiguous and in order
    fields = feature_fields(encoder, split, layer, None, batch_size, device)
    extra = {"pooling": parts[0][1]["pooling"], "task": split.task.name, "split_name": split.split}
    cache.put(feature_key(fields), array, fields, extra)
    for key in keys:  # the merged entry replaces its parts
        cache.remove(key)
    return cache.get(feature_key(fields))


def extract_cached(
    encoder: Encoder,
    split: SplitData,
    layers: list[str] | None,
    cache: FeatureCache | None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
    stats: CacheStats | None = None,
    cache_only: bool = False,
    n_shards: int | None = None,
) -> list[LayerFeatures]:
    """Features of every requested layer: from the cache where present (or mergeable from ``n_shards``
    shards), else extracted in one pass for the missing layers and stored."""
    if cache is None:
        return extract_features(encoder, split.images, layers, batch_size, device, progress)
    names = encoder.select_layers(layers)
    found: dict[str, tuple[np.ndarray, dict[str, Any]] | None] = {
        n: cache.get(feature_key(feature_fields(encoder, split, n, None, batch_size, device))) for n in names
    }
    if n_shards:
        for n in names:
            if found[n] is None:
                found[n] = _merge_shards(encoder, split, n, n_shards, batch_size, device, cache)
    missing = [n for n in names if found[n] is None]
    if stats is not None:
        stats.hits += len(names) - len(missing)
        stats.misses += len(missing)
    computed: dict[str, LayerFeatures] = {}
    if missing:
        if cache_only:
            raise SubclassbenchError(
                f"features of {encoder.spec} on {split.task.name} split '{split.split}' (layer {missing[0]}) are not "
                "in the cache; run `subclassbench extract` with the same --model, --weights, --task and --data first"
            )
        fresh = extract_features(encoder, split.images, missing, batch_size, device, progress)
        _store(cache, encoder, split, fresh, None, batch_size, device)
        computed = {f.name: f for f in fresh}
    depth = _depths(encoder, names)
    out = []
    for n in names:
        if n in computed:
            out.append(computed[n])
        else:
            array, record = found[n]  # type: ignore[misc]
            out.append(LayerFeatures(n, depth[n], record["pooling"], array))
    return out
