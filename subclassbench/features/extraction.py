"""Feature extraction: every requested layer from one forward pass per batch.

Intermediate outputs are captured by forward hooks and pooled on the fly, so
memory is O(batch × layers × width). The pooled N × width matrices form the
cacheable boundary between *extract* and *score*: with a feature cache they
are streamed to it batch by batch and never held whole (:mod:`subclassbench.features.matrices`);
without one they are held in memory.

Pooling (protocol v1): CNN maps ``B×C×H×W`` → global average pool; token
sequences ``B×T×D`` → mean of the patch tokens, prefix (class/register)
tokens excluded; vectors ``B×D`` are kept as they are.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from subclassbench.core.progress import bar as progress_bar
from subclassbench.core.progress import stage
from subclassbench.encoders.base import EMBEDDING, Encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.features.cache import CacheStats, EntryWriter, FeatureCache, feature_key
from subclassbench.features.matrices import Matrix, Rows
from subclassbench.features.outputs import BlockChecks, output_tensor, run_forward
from subclassbench.tasks.datasources import EncodedBatch, ImageSet

if TYPE_CHECKING:
    from subclassbench.tasks.task import SplitData

# Forward passes run by this process (batches): tests assert cache hits on it, not on time.
FORWARD_BATCHES = 0


@dataclass
class LayerFeatures:
    """One layer's pooled features on one split: an N × D float32 array, or a cache entry's file."""

    name: str
    depth: float
    pooling: str
    source: np.ndarray | Path

    @cached_property
    def matrix(self) -> Matrix:
        return Matrix(self.source)

    @property
    def features(self) -> np.ndarray:
        """The whole matrix in memory (a file is read each time: keep it only while it is used)."""
        return self.matrix.load()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.matrix.shape

    def rows(self, index: np.ndarray | None = None) -> Rows:
        """Some rows, read lazily (see :class:`~subclassbench.features.matrices.Rows`)."""
        return self.matrix.rows(index)


def pool(tensor: torch.Tensor, prefix_tokens: int, channels_last: bool = False) -> tuple[torch.Tensor, str]:
    """Reduce one layer's output (checked by :func:`~subclassbench.features.outputs.output_tensor`) to a B×D
    matrix; returns it and the pooling used."""
    if tensor.ndim == 4:
        return tensor.mean(dim=(1, 2) if channels_last else (2, 3)), "global_avg_pool"
    if tensor.ndim == 3:
        return tensor[:, prefix_tokens:].mean(dim=1), f"mean_tokens_excl_{prefix_tokens}_prefix"
    if tensor.ndim <= 2:  # a B×D matrix as it is; fewer dimensions is not one row per image: BlockChecks says so
        return tensor, "none"
    return tensor.flatten(1), "flatten"


# Compute precisions for the forward pass; fp32 is the protocol's reference (docs/scaling.md).
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
MAX_WORKERS = 8


def default_workers(images: ImageSet) -> int:
    """Loader processes when not chosen: none for in-memory arrays (loading is a slice), else one per
    available core but one (kept for the forward pass), at most :data:`MAX_WORKERS`."""
    if not images.decodes:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(MAX_WORKERS, cores - 1))


class _Batches(torch.utils.data.Dataset[torch.Tensor | EncodedBatch | str]):
    """Item ``i`` is batch ``i`` of an image set (contiguous rows), loaded in a worker process.

    A load error travels back as its message: a DataLoader would otherwise re-raise it wrapped in the
    worker's traceback, and the CLI shows one line per error."""

    def __init__(self, images: ImageSet, batch_size: int) -> None:
        self.images, self.batch_size = images, batch_size

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, i: int) -> torch.Tensor | EncodedBatch | str:
        start = i * self.batch_size
        try:
            return self.images.load(np.arange(start, min(start + self.batch_size, len(self.images))))
        except SubclassbenchError as exc:
            return str(exc)


def iterate_batches(
    images: ImageSet, batch_size: int, workers: int, pin_memory: bool = False
) -> Iterator[torch.Tensor | EncodedBatch]:
    """Every batch of ``images`` in order: loaded in this process (``workers=0``) or by ``workers`` processes
    ahead of the consumer (prefetching, optionally into pinned memory for non-blocking copies to a GPU)."""
    batches = _Batches(images, batch_size)
    if workers == 0:
        for i in range(len(batches)):
            yield _checked(batches[i])
        return
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4,
        multiprocessing_context="fork" if "fork" in mp.get_all_start_methods() else None,
    )
    for batch in loader:
        yield _checked(batch)


def _checked(batch: torch.Tensor | EncodedBatch | str) -> torch.Tensor | EncodedBatch:
    if isinstance(batch, str):
        raise SubclassbenchError(batch)
    return batch


# Receives each layer's pooled rows in order: (layer name, rows in the split, pooling, block).
BlockSink = Callable[[str, int, str, np.ndarray], None]


def extract_features(
    encoder: Encoder,
    images: ImageSet,
    layers: list[str] | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
    dtype: str = "fp32",
    channels_last: bool = False,
    workers: int | None = None,
) -> list[LayerFeatures]:
    """Run the encoder once over ``images`` and return pooled features per layer, in memory.

    ``dtype`` "bf16" runs the forward pass under autocast (pooled features are stored as float32);
    ``channels_last`` lays image batches and weights out NHWC, which GPU convolution kernels prefer.
    Neither changes what a layer is; both may change the last bits, so both key the feature cache.
    """
    names = encoder.select_layers(layers)
    n = len(images)
    out: dict[str, np.ndarray] = {}
    pooling: dict[str, str] = {}

    def keep(name: str, start: int, how: str, block: np.ndarray) -> None:
        if name not in out:
            out[name], pooling[name] = np.empty((n, block.shape[1]), dtype=np.float32), how
        out[name][start : start + len(block)] = block

    forward_pass(encoder, images, names, keep, batch_size, device, progress, dtype, channels_last, workers)
    return [LayerFeatures(name, encoder.depth(name), pooling[name], out[name]) for name in names]


def forward_pass(
    encoder: Encoder,
    images: ImageSet,
    names: list[str],
    sink: BlockSink,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
    dtype: str = "fp32",
    channels_last: bool = False,
    workers: int | None = None,
) -> None:
    """One forward pass per batch over ``images``; every layer in ``names`` is pooled and handed to ``sink``
    as float32 rows, batch by batch and in order, so nothing here grows with the number of images."""
    global FORWARD_BATCHES
    captured: dict[str, torch.Tensor] = {}
    pooling: dict[str, str] = {}

    def hook_for(name: str) -> Callable[[torch.nn.Module, object, torch.Tensor], None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            tensor = output_tensor(output, f"layer '{name}' of {encoder.spec}")
            captured[name], pooling[name] = pool(tensor, encoder.prefix_for(name), encoder.channels_last_maps)

        return hook

    handles = [encoder.layer_modules[n].register_forward_hook(hook_for(n)) for n in names if n != EMBEDDING]
    torch_device = torch.device(device)
    encoder.model.to(torch_device).eval()
    if channels_last:
        encoder.model.to(memory_format=torch.channels_last)
    workers = default_workers(images) if workers is None else workers
    autocast = torch.autocast(torch_device.type, dtype=DTYPES[dtype], enabled=dtype != "fp32")
    start = 0
    checks = BlockChecks(encoder.spec)
    try:
        with torch.inference_mode(), autocast:
            bar = progress_bar(len(images), f"extract {encoder.spec}", "img", progress)
            batches = iterate_batches(images, batch_size, workers, pin_memory=torch_device.type == "cuda")
            for number, loaded in enumerate(batches, start=1):
                if isinstance(loaded, EncodedBatch):  # --decoder torchvision: decoded here, on the device
                    x = encoder.preprocessing(loaded.decode(torch_device))
                else:
                    x = encoder.preprocessing(loaded.to(torch_device, non_blocking=True))
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                FORWARD_BATCHES += 1
                embedding = run_forward(encoder.spec, encoder.embed, x)  # user code may run here: checked
                if EMBEDDING in names:
                    tensor = output_tensor(embedding, f"the embedding of {encoder.spec}")
                    captured[EMBEDDING], pooling[EMBEDDING] = pool(tensor, encoder.prefix_tokens)
                missing = [name for name in names if name not in captured]
                if missing:  # hooks fire only when the model runs: an embed function that skipped the layer
                    raise SubclassbenchError(
                        f"layer '{missing[0]}' of {encoder.spec} did not run in the forward pass; the embed "
                        "function must run the model (e.g. embed=lambda x: model.forward_features(x)), or drop "
                        "the layer from layers="
                    )
                for name in names:
                    block = captured.pop(name)
                    checks.check(name, block, len(loaded), number)
                    sink(name, start, pooling[name], block.float().cpu().numpy())
                start += len(loaded)
                bar.update(len(loaded))
            bar.close()
    finally:
        for handle in handles:
            handle.remove()
        if channels_last:
            encoder.model.to(memory_format=torch.contiguous_format)


# --------------------------------------------------------------------------- cached extraction

# Bump when pooling or extraction changes what a cached feature matrix holds. Version 2: entries are keyed
# by the split's images (ids, content, data block), not its labels or hierarchy.
FEATURE_CODE_VERSION = "2"
DTYPE = "float32"


@dataclass
class ExtractionContext:
    """One encoder's requested layers on one split, with everything that keys their cached features.

    The encoder's identity and the layers' depths are computed once here;
    :meth:`key` gives one layer's cache key (for the whole split or a row range).
    Batch size and device are part of the key: kernels may round differently
    with either, and the cache must not blur that.
    """

    encoder: Encoder
    split: SplitData
    layers: list[str]
    batch_size: int = 256
    device: str = "cpu"
    progress: bool = False
    dtype: str = "fp32"
    channels_last: bool = False
    workers: int | None = None  # loader processes (None: default_workers); never changes a feature

    @classmethod
    def create(
        cls,
        encoder: Encoder,
        split: SplitData,
        layers: list[str] | None,
        batch_size: int = 256,
        device: str = "cpu",
        progress: bool = False,
        dtype: str = "fp32",
        channels_last: bool = False,
        workers: int | None = None,
    ) -> ExtractionContext:
        return cls(
            encoder, split, encoder.select_layers(layers), batch_size, str(device), progress, dtype, channels_last,
            workers,
        )  # fmt: skip

    def fields(self, layer: str, rows: tuple[int, int] | None = None) -> dict[str, Any]:
        """Everything that determines one layer's pooled features on this split (the key's content)."""
        out = {
            "feature_code": FEATURE_CODE_VERSION,
            "dtype": DTYPE,
            "encoder": self.encoder.identity,
            "batch_size": self.batch_size,
            "device": self.device,
            "preprocessing": self._preprocessing,
            "decoding": self._decoding,
            "layer": layer,
            "pooling": {
                "prefix_tokens": self.encoder.prefix_for(layer),
                "channels_last": self.encoder.channels_last_maps,
            },
            "split": self._split_fingerprint,
            "rows": None if rows is None else list(rows),
        }
        if self.compute is not None:  # absent for the fp32 reference, so its existing entries stay valid
            out["compute"] = self.compute
        return out

    @property
    def compute(self) -> dict[str, Any] | None:
        """The forward pass's precision and layout when not the reference (fp32, contiguous NCHW)."""
        if self.dtype == "fp32" and not self.channels_last:
            return None
        return {"dtype": self.dtype, "channels_last": self.channels_last}

    def key(self, layer: str, rows: tuple[int, int] | None = None) -> str:
        return feature_key(self.fields(layer, rows))

    @cached_property
    def _preprocessing(self) -> dict[str, Any]:
        return self.encoder.preprocessing.to_dict()

    @cached_property
    def _decoding(self) -> dict[str, Any] | None:
        return None if self.split.decoding is None else self.split.decoding.to_dict()

    @cached_property
    def _split_fingerprint(self) -> str:
        return self.split.images_fingerprint

    def _extra(self, pooling: str) -> dict[str, Any]:
        return {"pooling": pooling, "task": self.split.task.name, "split_name": self.split.split}

    def extract(self, names: list[str], rows: tuple[int, int] | None = None) -> list[LayerFeatures]:
        """Features of ``names`` (on ``rows`` of the split, or all of it), held in memory."""
        return extract_features(self.encoder, self._images(rows), names, **self._pass_options())

    def extract_into(
        self, cache: FeatureCache, names: list[str], rows: tuple[int, int] | None = None
    ) -> list[LayerFeatures]:
        """Features of ``names`` streamed into ``cache`` batch by batch, one entry per layer; returned as
        their files. Entries count only once every row is written: a failed or killed run leaves none."""
        images = self._images(rows)
        writers: dict[str, EntryWriter] = {}
        pooling: dict[str, str] = {}
        with ExitStack() as open_entries:

            def write(name: str, _start: int, how: str, block: np.ndarray) -> None:
                if name not in writers:
                    writers[name] = open_entries.enter_context(cache.writer(self.key(name, rows), len(images)))
                    pooling[name] = how
                writers[name].append(block)

            forward_pass(self.encoder, images, names, write, **self._pass_options())
            paths = {name: writers[name].commit(self.fields(name, rows), self._extra(pooling[name])) for name in names}
        return [LayerFeatures(n, self.encoder.depth(n), pooling[n], paths[n]) for n in names]

    def _pass_options(self) -> dict[str, Any]:
        """How the forward pass runs: the same for in-memory and streamed extraction."""
        return {
            "batch_size": self.batch_size, "device": self.device, "progress": self.progress, "dtype": self.dtype,
            "channels_last": self.channels_last, "workers": self.workers,
        }  # fmt: skip

    def _images(self, rows: tuple[int, int] | None) -> ImageSet:
        return self.split.images if rows is None else self.split.images.subset(np.arange(*rows))


def shard_rows(n: int, n_shards: int, index: int, batch_size: int) -> tuple[int, int]:
    """Contiguous sample range of shard ``index``; shard borders fall on batch borders so every batch
    (and so every feature) is the one an unsharded run computes."""
    if not 0 <= index < n_shards:
        raise SubclassbenchError(f"shard {index + 1}/{n_shards} does not exist; use 1..{n_shards}")
    n_batches = -(-n // batch_size)
    bounds = np.linspace(0, n_batches, n_shards + 1).round().astype(int)
    return min(int(bounds[index]) * batch_size, n), min(int(bounds[index + 1]) * batch_size, n)


def extract_shard(
    context: ExtractionContext, index: int, n_shards: int, cache: FeatureCache, stats: CacheStats | None = None
) -> None:
    """Extract one contiguous shard of a split into the cache (skipped when already there)."""
    rows = shard_rows(len(context.split), n_shards, index, context.batch_size)
    missing = [n for n in context.layers if cache.locate(context.key(n, rows)) is None]
    if stats is not None:
        stats.hits += len(context.layers) - len(missing)
        stats.misses += len(missing)
    if missing and rows[1] > rows[0]:
        context.extract_into(cache, missing, rows)


def _merge_shards(context: ExtractionContext, layer: str, n_shards: int, cache: FeatureCache) -> LayerFeatures | None:
    """One layer's whole-split entry streamed from its shards' entries (which it then replaces), or None
    while any shard is missing."""
    parts: list[tuple[str, Path, dict[str, Any]]] = []
    for index in range(n_shards):
        rows = shard_rows(len(context.split), n_shards, index, context.batch_size)
        if rows[1] == rows[0]:
            continue
        key = context.key(layer, rows)
        found = cache.locate(key)
        if found is None:
            return None
        parts.append((key, *found))
    pooling = parts[0][2]["pooling"]
    with cache.writer(context.key(layer), len(context.split)) as merged:
        for _key, path, _record in parts:  # manifest order: shards are contiguous and in order
            for block in Matrix(path).rows().blocks():
                merged.append(block)
        path = merged.commit(context.fields(layer), context._extra(pooling))
    for key, _path, _record in parts:  # the merged entry replaces its parts
        cache.remove(key)
    return LayerFeatures(layer, context.encoder.depth(layer), pooling, path)


def extract_cached(
    context: ExtractionContext,
    cache: FeatureCache | None,
    stats: CacheStats | None = None,
    cache_only: bool = False,
    n_shards: int | None = None,
) -> list[LayerFeatures]:
    """Features of every requested layer: from the cache where present (or mergeable from ``n_shards``
    shards), else extracted in one pass for the missing layers and streamed into it.

    With a cache, the returned features are its entries' files, read when scored; without one
    (``cache=None``) they are arrays in memory."""
    names = context.layers
    if cache is None:
        _announce(context, len(names), 0)
        return context.extract(names)
    found: dict[str, LayerFeatures | None] = {}
    for n in names:
        entry = cache.locate(context.key(n))
        found[n] = None if entry is None else LayerFeatures(n, context.encoder.depth(n), entry[1]["pooling"], entry[0])
    if n_shards:
        for n in names:
            if found[n] is None:
                found[n] = _merge_shards(context, n, n_shards, cache)
    missing = [n for n in names if found[n] is None]
    if stats is not None:
        stats.hits += len(names) - len(missing)
        stats.misses += len(missing)
    if missing:
        if cache_only:
            raise SubclassbenchError(
                f"features of {context.encoder.spec} on {context.split.task.name} split '{context.split.split}' "
                f"(layer {missing[0]}) are not in the cache; run `subclassbench extract` with the same --model, "
                "--weights, --task and --data first"
            )
        _announce(context, len(missing), len(names) - len(missing))
        found.update({f.name: f for f in context.extract_into(cache, missing)})
    else:  # say so too: a re-run that reads everything from the cache is not silently skipping work
        _announce(context, 0, len(names))
    features = {n: f for n, f in found.items() if f is not None}  # every layer, by now
    return [features[n] for n in names]


def _announce(context: ExtractionContext, computed: int, cached: int) -> None:
    """The stage line before a forward pass: which split, how many images and layers (a bar follows on a TTY)."""
    split = context.split
    from_cache = f"; {cached} from the cache" if cached else ""
    layers = f"all {cached} layer(s) from the cache" if not computed else f"{computed} layer(s){from_cache}"
    stage(
        f"features: {context.encoder.spec} on {split.task.name} split '{split.split}' ({len(split)} images, {layers})",
        context.progress,
    )
