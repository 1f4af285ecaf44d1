"""The evaluation pipeline: task → encoder → features → metric families → result.

``evaluate()`` is what ``subclassbench evaluate`` runs; the pieces stay
separate so that extraction (costly, GPU-friendly) and scoring (CPU) can be
run and cached independently. The pipeline knows the metric families only
through :mod:`subclassbench.scoring.family`: adding a family does not touch it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from subclassbench.core.files import check_writable_folder
from subclassbench.core.progress import stage, warn
from subclassbench.core.workerpool import WorkerPool
from subclassbench.encoders.base import Encoder, EncoderSpec, load_encoder
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.head import head_predictions, head_task, superclass_head
from subclassbench.evaluation.outputs import (
    ANY,
    RESULTS_ROOT,
    check_result_target,
    default_output_path,
    write_result,
)
from subclassbench.evaluation.record import result_document
from subclassbench.evaluation.request import EvaluationRequest, Prepared
from subclassbench.features.cache import CacheStats
from subclassbench.features.extraction import LayerFeatures, extract_cached, extract_shard
from subclassbench.features.matrices import Rows, all_finite
from subclassbench.results import intervals
from subclassbench.results.result import Result
from subclassbench.scoring.family import METRIC_FAMILIES, DataPlan, Scored, ScoringInputs, resolve_families
from subclassbench.scoring.samples import SampleOutputs
from subclassbench.tasks.datasources import Decoding
from subclassbench.tasks.task import SplitData, Task, load_task

NAMED_DATA_UNUSED = "--ood-data feeds the transfer metrics' OOD sets; drop it or run transfer too"


def _load_splits(task: Task, request: EvaluationRequest, families: list[str], notes: list[str]) -> dict[str, SplitData]:
    """The evaluation split, then each family's splits (the validation split for layer commitment, the train
    split for reconstruction accuracy and the probes).

    A split that cannot be loaded (e.g. ``--data`` is a single test file) drops
    what needs it, with a note, unless that metric was asked for explicitly. A family
    that cannot run at all is removed from ``families``.
    """
    evaluation = task.load_split(request.split, request.data)
    splits = {evaluation.split: evaluation}
    for name in list(families):
        before = dict(splits)
        plan = DataPlan(
            task, evaluation, splits, lambda split: task.load_split(split, request.data, primary=False), notes,
            explicit=request.metrics is not None,
        )  # fmt: skip
        if not METRIC_FAMILIES.get(name).load_splits(plan):
            families.remove(name)
            splits = before  # what only this family loaded goes with it
    return splits


def _encoder_decoding(splits: dict[str, SplitData], preprocessing: Preprocessing) -> dict[str, SplitData]:
    """Decode encoded images with the encoder's own resize and crop (timm's eval transform) instead of the task's."""
    size = preprocessing.input_size
    if size is None:
        raise SubclassbenchError("--image-preprocessing encoder needs an image encoder; this one takes vectors")
    resize = math.floor(max(size[1:]) / preprocessing.crop_pct)
    decoding = Decoding((size[0], size[1], size[2]), resize, preprocessing.interpolation)
    out = {}
    for name, data in splits.items():
        if not hasattr(data.images, "with_decoding"):
            raise SubclassbenchError(
                f"--image-preprocessing encoder applies to encoded images (ImageNet, image folders), not to task "
                f"'{data.task.name}'; drop the option"
            )
        out[name] = dataclasses.replace(data, images=data.images.with_decoding(decoding), decoding=decoding)
    return out


def _with_decoder(splits: dict[str, SplitData], decoder: str) -> dict[str, SplitData]:
    """Every split's encoded images decoded by ``decoder`` (recorded in its decoding, so in its cache keys)."""
    out = {}
    for name, data in splits.items():
        if data.decoding is None or not hasattr(data.images, "with_decoding"):
            raise SubclassbenchError(
                f"--decoder applies to encoded images (ImageNet, image folders), not to task '{data.task.name}' "
                f"split '{data.split}'; drop the option"
            )
        decoding = dataclasses.replace(data.decoding, decoder=decoder)
        out[name] = dataclasses.replace(data, images=data.images.with_decoding(decoding), decoding=decoding)
    return out


def _encoder(request: EvaluationRequest, sample_shape: tuple[int, ...], n_superclasses: int) -> Encoder:
    """The request's encoder: built from its spec, or its own module wrapped."""
    if request.cache_key is not None and request.module is None:
        raise SubclassbenchError("cache_key= applies to a model passed as an nn.Module; a spec identifies itself")
    if request.module is None:
        if request.embed is not None:
            raise SubclassbenchError("embed= applies to a model passed as an nn.Module; drop it")
        if request.preprocess is not None and not isinstance(request.preprocess, Mapping):
            raise SubclassbenchError(
                "preprocess= for a model spec is a mapping of the fields to change, e.g. {'mean': 0.5, 'std': 0.5}"
            )
        return load_encoder(
            request.model,
            weights=request.weights,
            sample_shape=sample_shape,
            num_classes=n_superclasses,
            pretrained=request.pretrained,
            arch_kwargs=request.model_args,
            preprocess=dict(request.preprocess) if request.preprocess else None,
        )
    if request.model_args:
        raise SubclassbenchError("model_args= applies to specs; build your module with its arguments instead")
    from subclassbench.encoders.module import wrap_module

    if request.weights is not None:
        raise SubclassbenchError("weights= applies to specs; load the weights into your module before evaluating it")
    name = EncoderSpec.parse(request.model).name
    return wrap_module(
        request.module, name=name, sample_shape=sample_shape, preprocess=request.preprocess, embed=request.embed,
        cache_key=request.cache_key,
    )  # fmt: skip


UPSAMPLING_NOTED = 2.0  # an encoder reading the task's images at more than twice their size is said so


def _upsampling_note(evaluation: SplitData, preprocessing: Preprocessing) -> str | None:
    """A note when the encoder's input size blows the task's images up (8-px digits into a 224-px ViT, 64-px
    Tiny ImageNet photographs into a 224-px CNN): the numbers then describe interpolated pixels.

    The native size is the task's declared image size for encoded images (files are decoded to it, or
    straight to the encoder's size with ``--image-preprocessing encoder``), else the stored samples' size.
    """
    size = preprocessing.input_size
    declared = evaluation.task.data.get("image_shape")
    native = tuple(declared) if evaluation.decoding is not None and declared else evaluation.images.sample_shape
    if size is None or len(native) != 3:
        return None
    # The encoder's resize: its shorter side to size / crop_pct, then a centre crop to its input (timm's eval
    # transform). Without a crop, a straight resize to the input.
    resized = math.floor(max(size[1:]) / preprocessing.crop_pct)
    factor = resized / min(native[1], native[2])
    if factor <= UPSAMPLING_NOTED:
        return None
    target = (
        f"{resized}x{resized}, centre-cropped to the encoder's {size[1]}x{size[2]} input "
        f"(crop_pct {preprocessing.crop_pct:g})"
        if resized != max(size[1:])
        else f"the encoder's {size[1]}x{size[2]} input"
    )
    scale = f"images upsampled {factor:.1f}x, from {native[1]}x{native[2]} to {target}"
    return f"{scale}; numbers describe interpolated images"


def prepare(request: EvaluationRequest) -> Prepared:
    """Load the task's splits and the encoder; nothing is extracted yet."""
    started = time.perf_counter()
    request.check()
    task = load_task(request.task)
    metrics = resolve_families(task, request.metrics)
    if request.ood_data and not any(METRIC_FAMILIES.get(name).takes_named_data for name in metrics):
        raise SubclassbenchError(NAMED_DATA_UNUSED)
    for name in metrics:  # before any data is read
        METRIC_FAMILIES.get(name).check(task, request.ood_data)
    notes: list[str] = []
    stage(f"loading the data of {task.name} (metrics: {', '.join(metrics)})", request.progress)
    splits = _load_splits(task, request, metrics, notes)
    evaluation = next(iter(splits.values()))
    stage(f"loading encoder {request.model}", request.progress)
    encoder = _encoder(request, evaluation.images.sample_shape, len(task.superclasses))
    for warning in encoder.warnings:
        warn(warning)
        notes.append(f"warning: {warning}")
    if request.image_preprocessing == "encoder":
        splits = _encoder_decoding(splits, encoder.preprocessing)
        evaluation = next(iter(splits.values()))
    extra_splits: dict[str, SplitData] = {}
    for name in metrics:
        extra_splits |= METRIC_FAMILIES.get(name).load_extra_splits(task, request.data, request.ood_data, notes)
    if request.image_preprocessing == "encoder":
        extra_splits = _encoder_decoding(extra_splits, encoder.preprocessing)
    if request.decoder != "pil":
        splits, extra_splits = _with_decoder(splits, request.decoder), _with_decoder(extra_splits, request.decoder)
    if request.limit is not None:
        splits = {name: data.limited(request.limit) for name, data in splits.items()}
        extra_splits = {name: data.limited(request.limit) for name, data in extra_splits.items()}
    notes.extend(d.note for d in (*splits.values(), *extra_splits.values()) if d.note)
    upsampling = _upsampling_note(evaluation, encoder.preprocessing)
    if upsampling:
        notes.append(upsampling)
    layers = encoder.select_layers(request.layers)
    return Prepared(task, metrics, notes, splits, extra_splits, encoder, layers, started, time.perf_counter())


def extract(request: EvaluationRequest, shard: tuple[int, int] | None = None) -> CacheStats:
    """``subclassbench extract``: fill the feature cache for every split an evaluation needs.

    ``shard`` = (index, count) extracts one contiguous part of every split;
    a later ``evaluate``/``score`` with ``n_shards=count`` merges them.
    """
    cache = request.feature_cache()
    if cache is None:
        raise SubclassbenchError("extract writes to the feature cache; it cannot run with the cache off")
    prepared = prepare(request)
    _check_cacheable(prepared.encoder, request, extracting=True)
    stats = CacheStats()
    for data in (*prepared.splits.values(), *prepared.extra_splits.values()):
        context = request.context(prepared.encoder, data, prepared.layers)
        if shard is None:
            extract_cached(context, cache, stats, n_shards=request.n_shards)
        else:
            extract_shard(context, shard[0], shard[1], cache, stats)
    return stats


def _check_cacheable(encoder: Encoder, request: EvaluationRequest, extracting: bool = False) -> bool:
    """Whether the feature cache may serve this encoder. ``extract`` and ``cache="only"`` need it: an error."""
    if encoder.uncacheable is None:
        return True
    if extracting or request.cache == "only":
        raise SubclassbenchError(
            f"the model's features cannot be cached: it cannot be fingerprinted ({encoder.uncacheable}); "
            "pass cache_key= naming its state"
        )
    return False


def evaluate(request: EvaluationRequest) -> Result:
    """Run the protocol and return the validated result (not yet written).

    Features come from the cache where present (``request.cache``), so a
    re-run or a re-score after ``extract`` runs no forward pass.
    """
    prepared = prepare(request)
    cache = request.feature_cache() if _check_cacheable(prepared.encoder, request) else None
    if prepared.encoder.uncacheable is not None and request.cache == "use":
        prepared.notes.append(
            f"features were not cached: the model cannot be fingerprinted ({prepared.encoder.uncacheable}); "
            "pass cache_key= naming its state to cache them"
        )
    if cache is not None and request.cache == "use":
        cache.check_writable()  # before the forward pass, not after it
    stats = CacheStats()
    features = {
        name: extract_cached(
            request.context(prepared.encoder, data, prepared.layers),
            cache,
            stats,
            cache_only=request.cache == "only",
            n_shards=request.n_shards,
        )
        for name, data in (*prepared.splits.items(), *prepared.extra_splits.items())
    }
    extracted = time.perf_counter()
    head, why_not = superclass_head(
        prepared.encoder, prepared.task, head_task(request.head_task, prepared.encoder.card)
    )
    if why_not is not None:
        prepared.notes.append(why_not)
    evaluation = next(iter(prepared.splits))
    head_pred = None if head is None else head_predictions(head, features[evaluation])
    per_layer, summary, samples = score(
        prepared, features, request.progress, request.device, request.resolved_score_workers(), head_pred
    )
    scored = time.perf_counter()
    uncertainty = None
    if request.bootstrap > 0:
        stage(f"bootstrap intervals ({request.bootstrap} resamples)", request.progress)
        uncertainty = intervals.attach(samples, per_layer, summary, resamples=request.bootstrap)
    done = time.perf_counter()
    timing = {
        "load": round(prepared.loaded - prepared.started, 3),
        "extract": round(extracted - prepared.loaded, 3),
        "score": round(scored - extracted, 3),
        "bootstrap": round(done - scored, 3),
        "total": round(done - prepared.started, 3),
    }
    return result_document(request, prepared, per_layer, summary, timing, stats, samples, uncertainty)


def score(
    prepared: Prepared,
    features: dict[str, list[LayerFeatures]],
    progress: bool,
    device: str = "cpu",
    score_workers: int = 1,
    head_pred: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], SampleOutputs]:
    """Per-layer scores, the summary and the per-sample outputs, for every metric family the evaluation runs.

    ``score_workers`` processes score clusterability's (layer, superclass) units: the same scores.
    ``head_pred``: the evaluation images' superclass as the encoder's own head predicts it, when it has one."""
    with WorkerPool(score_workers) as pool:
        return _score(prepared, features, progress, device, pool, head_pred)


def _score(
    prepared: Prepared,
    features: dict[str, list[LayerFeatures]],
    progress: bool,
    device: str,
    pool: WorkerPool,
    head_pred: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], SampleOutputs]:
    task, metrics, notes, splits = prepared.task, prepared.metrics, prepared.notes, prepared.splits
    evaluation = next(iter(splits.values()))
    for split_name, layers in features.items():
        for layer in layers:
            if not all_finite(layer.rows()):
                raise SubclassbenchError(
                    f"layer {layer.name} has NaN or infinite features on split '{split_name}'; "
                    "check the encoder's weights"
                )
    first = features[evaluation.split]
    per_layer: list[dict[str, Any]] = [
        {"name": f.name, "depth": f.depth, "dim": int(f.shape[1]), "pooling": f.pooling} for f in first
    ]
    for entry, layer in zip(per_layer, first, strict=True):
        flags = degenerate_flags(layer.rows())
        if flags:
            entry["flags"] = flags
    samples = SampleOutputs([f.name for f in first], evaluation.superclass, evaluation.subclass)
    inputs = ScoringInputs(
        task, evaluation, splits, prepared.extra_splits, features, prepared.layers, prepared.encoder.card,
        notes, device, progress, pool, head_pred,
    )  # fmt: skip
    scored = Scored(per_layer, {}, samples)
    # Every family starts first (clusterability's (layer, superclass) units go to the pool's workers), then
    # each does its work in this process (transfer trains its probes) while the workers run, then each
    # collects, in the families' order: the result's records and summary keep that order.
    runs = [METRIC_FAMILIES.get(name).start(inputs) for name in metrics]
    for run in runs:
        run.run()
    for run in runs:
        run.finish(scored)
    return per_layer, scored.summary, samples


def degenerate_flags(features: np.ndarray | Rows) -> list[str]:
    """Per-layer warnings: features that are the same for every sample, or mostly zero (dead units).

    Read a block of rows at a time."""
    rows = Rows.of(features)
    n, width = rows.shape
    low, high = np.full(width, np.inf), np.full(width, -np.inf)
    dead = np.ones(width, dtype=bool)
    for block in rows.blocks():
        low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
        dead &= (block == 0).all(axis=0)
    flags = []
    if n > 1 and float((high - low).max(initial=0.0)) == 0.0:
        flags.append("constant")
    if n and width and float(dead.mean()) > 0.5:
        flags.append("mostly_dead_units")
    return flags


def evaluate_to_file(request: EvaluationRequest, out: Path | None = None, force: bool = False) -> tuple[Result, Path]:
    """Evaluate and write the result to ``out`` (or the default path); the target is checked before any work."""
    expected: str | object | None = ANY
    if out is not None:
        expected = check_result_target(out, request, force)
    else:
        check_writable_folder(RESULTS_ROOT, "the results folder")
    result = evaluate(request)
    path = write_result(result, out or default_output_path(result), force, expected)
    return result, path
