"""The evaluation pipeline: task → encoder → features → protocol → result.

``evaluate()`` is what ``subclassbench evaluate`` runs; the pieces stay
separate so that extraction (costly, GPU-friendly) and scoring (CPU) can be
run and cached independently.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import re
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subclassbench.core.files import check_file_name, check_writable_folder, inside
from subclassbench.core.progress import stage
from subclassbench.core.version import __version__
from subclassbench.core.workerpool import WorkerPool, available_cores
from subclassbench.encoders.base import Encoder, EncoderSpec, load_encoder
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.errors import DataMissingError, SubclassbenchError
from subclassbench.features.cache import CacheStats, FeatureCache
from subclassbench.features.extraction import DTYPES, ExtractionContext, LayerFeatures, extract_cached, extract_shard
from subclassbench.features.matrices import Rows, all_finite
from subclassbench.results import intervals
from subclassbench.results.result import SCHEMA_VERSION, Result, check_output_path
from subclassbench.results.samples import ProbeSamples, SampleOutputs
from subclassbench.scoring.clusterability import LayerClusters, StartedLayers, commit_layer, summarize
from subclassbench.scoring.protocol import PROTOCOL, PROTOCOL_VERSION, protocol_fingerprint
from subclassbench.scoring.transfer import TransferPlan, ood_key, score_transfer, summarize_transfer
from subclassbench.tasks.datasources import DECODERS, Decoding
from subclassbench.tasks.task import OODSet, SplitData, Task, load_task
from subclassbench.uncertainty.bootstrap import BOOTSTRAP

DEFAULT_MODEL = "builtin:digits_cnn.digits5_coarse"
DEFAULT_TASK = "digits-5"
METRICS = ("clusterability", "transfer")
CACHE_MODES = ("use", "off", "only")
MAX_RESAMPLES = 100_000
MAX_LOADER_WORKERS = 64
MAX_SCORE_WORKERS = 256
IMAGE_PREPROCESSING = ("task", "encoder")


@dataclass
class EvaluationRequest:
    model: str = DEFAULT_MODEL
    task: str = DEFAULT_TASK
    weights: str | None = None
    data: str | None = None
    layers: list[str] | None = None
    split: str | None = None
    batch_size: int = 256
    device: str = "cpu"
    pretrained: bool = True
    progress: bool = True
    metrics: list[str] | None = None  # None: every family the task supports
    image_preprocessing: str = "task"  # "task": the task's resize/crop; "encoder": the encoder's own
    cache: str = "use"  # "use": read and fill the feature cache; "off": bypass it; "only": score from it alone
    cache_dir: str | None = None  # default: $SUBCLASSBENCH_CACHE or ~/.cache/subclassbench/features
    n_shards: int | None = None  # merge features from this many cached shards when the whole split is absent
    # Where the result says the weights live (a submission records its repository path, not a staging folder).
    weights_label: str | None = None
    # OOD set name → its data (default: ``data``, which serves OOD sets drawn from the same dataset).
    ood_data: dict[str, str] | None = None
    # Bootstrap resamples for the confidence intervals (0: no intervals; the per-sample file is written anyway).
    bootstrap: int = int(BOOTSTRAP["resamples"])  # type: ignore[call-overload]
    # A seeded, subclass-stratified subset of at most this many samples per split: quick tries, never ranked.
    limit: int | None = None
    dtype: str = "fp32"  # forward-pass precision: fp32 (the protocol's reference) or bf16 (autocast)
    channels_last: bool = False  # NHWC memory layout for the forward pass
    workers: int | None = None  # loader processes for encoded images (None: one per core but one)
    decoder: str = "pil"  # encoded images: "pil" (the reference) or "torchvision" (on the device)
    # Processes scoring clusterability's (layer, superclass) units (1: in this process; 0: one per core).
    score_workers: int = 1
    # The Python API's own model (``model`` is then ``module:<name>``): an nn.Module, its preprocessing
    # (a Preprocessing or its fields; default: the task's samples as they come) and embedding function.
    module: Any = None
    preprocess: Any = None
    embed: Any = None

    def check(self) -> None:
        """Options that can be checked before anything is loaded."""
        if self.cache not in CACHE_MODES:
            raise SubclassbenchError(f"unknown cache mode '{self.cache}'; use {', '.join(CACHE_MODES)}")
        if self.image_preprocessing not in IMAGE_PREPROCESSING:
            raise SubclassbenchError(
                f"unknown --image-preprocessing '{self.image_preprocessing}'; use {' or '.join(IMAGE_PREPROCESSING)}"
            )
        if self.batch_size < 1:
            raise SubclassbenchError("--batch-size must be ≥ 1")
        if self.dtype not in DTYPES:
            raise SubclassbenchError(f"unknown --dtype '{self.dtype}'; use {' or '.join(DTYPES)}")
        if self.decoder not in DECODERS:
            raise SubclassbenchError(f"unknown --decoder '{self.decoder}'; use {' or '.join(DECODERS)}")
        if self.limit is not None and self.limit < 1:
            raise SubclassbenchError("--limit must be ≥ 1 (samples per split)")
        if self.workers is not None and not 0 <= self.workers <= MAX_LOADER_WORKERS:
            raise SubclassbenchError(f"--workers must be between 0 (load in this process) and {MAX_LOADER_WORKERS}")
        if not 0 <= self.score_workers <= MAX_SCORE_WORKERS:
            raise SubclassbenchError(
                f"--score-workers must be between 0 (one per core) and {MAX_SCORE_WORKERS} (1: in this process)"
            )
        if not 0 <= self.bootstrap <= MAX_RESAMPLES:
            raise SubclassbenchError(f"--bootstrap must be between 0 (no intervals) and {MAX_RESAMPLES}")
        check_device(self.device)
        if self.cache_dir is not None:
            FeatureCache(self.cache_dir)  # an empty --cache-dir is an error, not the default cache
        EncoderSpec.parse(self.model)  # a malformed spec fails before any data is read

    def feature_cache(self) -> FeatureCache | None:
        return None if self.cache == "off" else FeatureCache(self.cache_dir)

    def context(self, encoder: Encoder, split: SplitData, layers: list[str]) -> ExtractionContext:
        return ExtractionContext(
            encoder, split, layers, self.batch_size, self.device, self.progress, self.dtype, self.channels_last,
            self.workers,
        )  # fmt: skip

    def compute_record(self) -> dict[str, Any]:
        """How the forward pass ran: precision, layout, loader processes (``run.compute`` in a result)."""
        return {
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "workers": self.workers,
            "decoder": self.decoder,
            "score_workers": self.resolved_score_workers(),
        }

    def resolved_score_workers(self) -> int:
        return self.score_workers or available_cores()


def check_device(device: str) -> None:
    """A torch device that exists here, or a one-line error."""
    try:
        torch_device = torch.device(device)
    except (RuntimeError, ValueError):
        raise SubclassbenchError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if torch_device.type not in ("cpu", "cuda", "mps"):
        raise SubclassbenchError(f"device '{device}' cannot run an evaluation; use cpu, cuda or cuda:N")
    if torch_device.type == "cuda" and (
        not torch.cuda.is_available() or (torch_device.index or 0) >= torch.cuda.device_count()
    ):
        raise SubclassbenchError(f"device '{device}' is not available here; use --device cpu")


@dataclass
class Prepared:
    """Everything resolved before features are extracted: task, splits, encoder, layers."""

    task: Task
    metrics: list[str]
    notes: list[str]
    splits: dict[str, SplitData]
    ood_splits: dict[str, SplitData]  # keyed by transfer.ood_key(set, split)
    encoder: Encoder
    layers: list[str]
    started: float
    loaded: float


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    return {
        "subclassbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "faiss": _version("faiss-cpu") or _version("faiss-gpu"),
        "sklearn": _version("scikit-learn"),
        "timm": _version("timm"),
        "open_clip": _version("open_clip_torch"),
    }


def _peak_memory_mb() -> float:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak_kb / (1024 * 1024) if sys.platform == "darwin" else peak_kb / 1024, 1)


def resolve_metrics(task: Task, requested: list[str] | None) -> list[str]:
    """``None`` means every metric family the task supports; explicit names are validated."""
    if requested is None:
        return ["clusterability"] + (["transfer"] if task.transfer is not None else [])
    unknown = [m for m in requested if m not in METRICS]
    if unknown or not requested:
        raise SubclassbenchError(f"unknown metric '{(unknown or [''])[0]}'; choose from {', '.join(METRICS)}")
    if "transfer" in requested and task.transfer is None:
        raise SubclassbenchError(
            f"task '{task.name}' defines no transfer splits; use --metrics clusterability or add a transfer block"
        )
    return [m for m in METRICS if m in requested]


def reconstruction_split(task: Task) -> str | None:
    """The train split reconstruction accuracy fits its clusters and superclass probe on."""
    if task.transfer is not None:
        return task.transfer.id_train_split
    return "train" if "train" in task.splits else None


def _load_splits(task: Task, request: EvaluationRequest, metrics: list[str], notes: list[str]) -> dict[str, SplitData]:
    """The evaluation split, the validation split for layer commitment, the train split for reconstruction
    accuracy, and the transfer splits.

    A split that cannot be loaded (e.g. ``--data`` is a single test file) drops
    what needs it, with a note, unless that metric was asked for explicitly.
    """
    evaluation = task.load_split(request.split, request.data)
    splits = {evaluation.split: evaluation}
    val = task.validation_split
    if "clusterability" in metrics and val and val != evaluation.split:
        try:
            splits[val] = task.load_split(val, request.data, primary=False)
        except DataMissingError as exc:  # absent: no committed layer; present but corrupt: an error
            notes.append(f"no committed layer (needs the '{val}' split; pass --data with every split): {exc}")
    train = reconstruction_split(task)
    if "clusterability" in metrics and train and train != evaluation.split and train not in splits:
        try:
            splits[train] = task.load_split(train, request.data, primary=False)
        except DataMissingError as exc:
            notes.append(f"no reconstruction accuracy (needs the '{train}' split; pass --data with every split): {exc}")
    if "clusterability" in metrics and train == evaluation.split:
        notes.append("no reconstruction accuracy: it fits on the train split, which is the evaluated split here")
    if "transfer" not in metrics:
        return splits
    try:
        for name in TransferPlan.splits_needed(task):
            if name not in splits:
                splits[name] = task.load_split(name, request.data, primary=False)
    except DataMissingError as exc:
        if request.metrics is not None:  # asked for explicitly: its absence is an error
            raise SubclassbenchError(f"transfer needs the task's train split: {exc}") from None
        metrics.remove("transfer")
        notes.append(f"transfer skipped (needs the train split; pass --data with every split): {exc}")
        splits = {k: v for k, v in splits.items() if k in (evaluation.split, val, train)}
    return splits


def check_ood_sets(task: Task, request: EvaluationRequest) -> list[tuple[OODSet, Task]]:
    """Each OOD set's task, checked before any data is read: it exists, has the splits named, and shares no
    class with the task (else its "OOD" accuracy would be in-distribution)."""
    if task.transfer is None:
        if request.ood_data:
            raise SubclassbenchError(f"--ood-data: task '{task.name}' lists no OOD sets")
        return []
    known = {o.name for o in task.transfer.ood_sets}
    unknown = sorted(set(request.ood_data or {}) - known)
    if unknown:
        raise SubclassbenchError(
            f"--ood-data names OOD set '{unknown[0]}', which task '{task.name}' does not list; "
            f"its OOD sets: {sorted(known) or 'none'}"
        )
    out = []
    for ood in task.transfer.ood_sets:
        ood_task = load_task(ood.task, by_name_only=True)
        shared = sorted(task.class_keys() & ood_task.class_keys())
        if shared:
            raise SubclassbenchError(
                f"task '{task.name}': OOD set '{ood.name}' shares classes with the task itself "
                f"(class {shared[0][1]} of {shared[0][0]}); an OOD set's classes must be disjoint from the task's"
            )
        for split in (ood.train_split, ood.test_split):
            if split not in ood_task.splits:
                raise SubclassbenchError(
                    f"task '{task.name}': OOD set '{ood.name}' uses split '{split}', which task '{ood_task.name}' "
                    f"does not have ({list(ood_task.splits)})"
                )
        out.append((ood, ood_task))
    return out


def _load_ood_splits(
    task: Task, checked: list[tuple[OODSet, Task]], request: EvaluationRequest, notes: list[str]
) -> dict[str, SplitData]:
    """Every OOD set's train and test split; a set whose data is absent is left out, with a note.

    ``--data`` serves an OOD set only when it is the same dataset as the task
    (e.g. cifar10-ood5 beside cifar10-id5); another dataset needs its own
    ``--ood-data NAME=PATH`` (or the Hub), so no file is read as the wrong data.
    """
    out: dict[str, SplitData] = {}
    for ood, ood_task in checked:
        same_dataset = ood_task.dataset_identity == task.dataset_identity
        data = (request.ood_data or {}).get(ood.name, request.data if same_dataset else None)
        try:
            loaded = {s: ood_task.load_split(s, data, primary=False) for s in (ood.train_split, ood.test_split)}
        except DataMissingError as exc:
            notes.append(f"OOD set '{ood.name}' left out (no data; pass --ood-data {ood.name}=PATH): {exc}")
            continue
        out.update({ood_key(ood.name, s): d for s, d in loaded.items()})
    return out


def _encoder_decoding(splits: dict[str, SplitData], preprocessing: Preprocessing) -> dict[str, SplitData]:
    """Decode encoded images with the encoder's own resize and crop (timm's eval transform) instead of the task's."""
    size = preprocessing.input_size
    if size is None:
        raise SubclassbenchError("--image-preprocessing encoder needs an image encoder; this one takes vectors")
    decoding = Decoding(tuple(size), math.floor(max(size[1:]) / preprocessing.crop_pct), preprocessing.interpolation)
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
    if request.module is None:
        if request.preprocess is not None or request.embed is not None:
            raise SubclassbenchError("preprocess= and embed= apply to a model passed as an nn.Module; drop them")
        return load_encoder(
            request.model,
            weights=request.weights,
            sample_shape=sample_shape,
            num_classes=n_superclasses,
            pretrained=request.pretrained,
        )
    from subclassbench.encoders.module import wrap_module

    if request.weights is not None:
        raise SubclassbenchError("weights= applies to specs; load the weights into your module before evaluating it")
    name = EncoderSpec.parse(request.model).name
    return wrap_module(
        request.module, name=name, sample_shape=sample_shape, preprocess=request.preprocess, embed=request.embed
    )


UPSAMPLING_NOTED = 2.0  # an encoder reading the task's images at more than twice their size is said so


def _upsampling_note(evaluation: SplitData, preprocessing: Preprocessing) -> str | None:
    """A note when the encoder's input size blows the task's images up (8-px digits into a 224-px ViT):
    the numbers then describe interpolated pixels, which a reader should know."""
    native, size = evaluation.images.sample_shape, preprocessing.input_size
    if size is None or len(native) != 3 or evaluation.decoding is not None:  # encoded images: decoded to size
        return None
    factor = max(size[1] / native[1], size[2] / native[2])
    if factor <= UPSAMPLING_NOTED:
        return None
    return (
        f"images upsampled {factor:.1f}x, from {native[1]}x{native[2]} to the encoder's {size[1]}x{size[2]} input; "
        "numbers describe interpolated images"
    )


def prepare(request: EvaluationRequest) -> Prepared:
    """Load the task's splits and the encoder; nothing is extracted yet."""
    started = time.perf_counter()
    request.check()
    task = load_task(request.task)
    metrics = resolve_metrics(task, request.metrics)
    if request.ood_data and "transfer" not in metrics:
        raise SubclassbenchError("--ood-data feeds the transfer metrics' OOD sets; drop it or run transfer too")
    checked = check_ood_sets(task, request) if "transfer" in metrics else []  # before any data is read
    notes: list[str] = []
    stage(f"loading the data of {task.name} (metrics: {', '.join(metrics)})", request.progress)
    splits = _load_splits(task, request, metrics, notes)
    evaluation = next(iter(splits.values()))
    stage(f"loading encoder {request.model}", request.progress)
    encoder = _encoder(request, evaluation.images.sample_shape, len(task.superclasses))
    if request.image_preprocessing == "encoder":
        splits = _encoder_decoding(splits, encoder.preprocessing)
        evaluation = next(iter(splits.values()))
    ood_splits = _load_ood_splits(task, checked, request, notes) if "transfer" in metrics else {}
    if request.image_preprocessing == "encoder":
        ood_splits = _encoder_decoding(ood_splits, encoder.preprocessing)
    if request.decoder != "pil":
        splits, ood_splits = _with_decoder(splits, request.decoder), _with_decoder(ood_splits, request.decoder)
    if request.limit is not None:
        splits = {name: data.limited(request.limit) for name, data in splits.items()}
        ood_splits = {name: data.limited(request.limit) for name, data in ood_splits.items()}
    notes.extend(d.note for d in (*splits.values(), *ood_splits.values()) if d.note)
    upsampling = _upsampling_note(evaluation, encoder.preprocessing)
    if upsampling:
        notes.append(upsampling)
    layers = encoder.select_layers(request.layers)
    return Prepared(task, metrics, notes, splits, ood_splits, encoder, layers, started, time.perf_counter())


def extract(request: EvaluationRequest, shard: tuple[int, int] | None = None) -> CacheStats:
    """``subclassbench extract``: fill the feature cache for every split an evaluation needs.

    ``shard`` = (index, count) extracts one contiguous part of every split;
    a later ``evaluate``/``score`` with ``n_shards=count`` merges them.
    """
    cache = request.feature_cache()
    if cache is None:
        raise SubclassbenchError("extract writes to the feature cache; it cannot run with the cache off")
    prepared = prepare(request)
    stats = CacheStats()
    for data in (*prepared.splits.values(), *prepared.ood_splits.values()):
        context = request.context(prepared.encoder, data, prepared.layers)
        if shard is None:
            extract_cached(context, cache, stats, n_shards=request.n_shards)
        else:
            extract_shard(context, shard[0], shard[1], cache, stats)
    return stats


def evaluate(request: EvaluationRequest) -> Result:
    """Run the protocol and return the validated result (not yet written).

    Features come from the cache where present (``request.cache``), so a
    re-run or a re-score after ``extract`` runs no forward pass.
    """
    prepared = prepare(request)
    cache = request.feature_cache()
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
        for name, data in (*prepared.splits.items(), *prepared.ood_splits.items())
    }
    extracted = time.perf_counter()
    per_layer, summary, samples = score(
        prepared, features, request.progress, request.device, request.resolved_score_workers()
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
    return _result(request, prepared, per_layer, summary, timing, stats, samples, uncertainty)


def score(
    prepared: Prepared,
    features: dict[str, list[LayerFeatures]],
    progress: bool,
    device: str = "cpu",
    score_workers: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, Any], SampleOutputs]:
    """Per-layer scores, the summary and the per-sample outputs, for every metric family the evaluation runs.

    ``score_workers`` processes score clusterability's (layer, superclass) units: the same scores."""
    with WorkerPool(score_workers) as pool:
        return _score(prepared, features, progress, device, pool)


def _score(
    prepared: Prepared, features: dict[str, list[LayerFeatures]], progress: bool, device: str, pool: WorkerPool
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
    summary: dict[str, Any] = {}
    samples = SampleOutputs([f.name for f in first], evaluation.superclass, evaluation.subclass)
    clustered: list[LayerClusters] = []
    # Clusterability's (layer, superclass) units start first and run in the pool's workers while this
    # process trains the transfer and superclass probes; results are filled in in the result's order.
    started = started_validation = None
    val = task.validation_split
    if "clusterability" in metrics:
        train = reconstruction_split(task)
        reference = (features[train], splits[train]) if train in features and train != evaluation.split else None
        stage(f"clusterability of {len(first)} layers", progress)
        started = StartedLayers(first, evaluation, progress, reference, True, device, pool)
        if val in features and val != evaluation.split:
            try:  # the validation split only chooses the layer: k-means AMI, no Ward, no reconstruction
                started_validation = StartedLayers(features[val], splits[val], progress, None, False, device, pool)
            except SubclassbenchError as exc:  # e.g. a subset too small to cluster: report, don't fail
                notes.append(f"no committed layer: the '{val}' split cannot be scored ({exc})")
    transferred = None
    if "transfer" in metrics:
        plan = TransferPlan.from_task(task, splits, prepared.ood_splits)
        ood = f" and {len(plan.ood)} OOD set(s)" if plan.ood else ""
        stage(f"transfer probes on {len(first)} layers (ID{ood})", progress)
        transferred = score_transfer(features, plan, device=device, progress=progress)
    if started is not None:
        clustered = started.finish()
        for entry, layer_clusters in zip(per_layer, clustered, strict=True):
            entry["clusterability"] = layer_clusters.scores
        summary.update(summarize(per_layer))
        samples.kmeans = np.stack([c.kmeans for c in clustered])
        if started.train is not None:
            samples.superclass_pred = np.stack([c.superclass_pred for c in clustered])  # type: ignore[misc]
            samples.reconstructed = np.stack([c.reconstructed for c in clustered])  # type: ignore[misc]
        if started_validation is not None:
            try:
                validation = [c.scores for c in started_validation.finish()]
            except SubclassbenchError as exc:
                notes.append(f"no committed layer: the '{val}' split cannot be scored ({exc})")
            else:
                summary.update(commit_layer(per_layer, validation, val))
        kept = [n for n in intervals.ward_layers(summary) if clustered[samples.layers.index(n)].ward is not None]
        if kept:
            samples.ward_layers = kept
            samples.ward = np.stack([clustered[samples.layers.index(n)].ward for n in kept])  # type: ignore[misc]
    if transferred is not None:
        for entry, layer_transfer in zip(per_layer, transferred, strict=True):
            entry["transfer"] = layer_transfer.scores
        for name, test_set in plan.test_sets().items():
            pred = np.stack([t.predictions[name] for t in transferred])
            samples.probes[name] = ProbeSamples(np.asarray(test_set.labels, dtype=np.int64), pred)
        detail = summarize_transfer(prepared.layers, [e["transfer"] for e in per_layer], plan)
        seen = trained_on(prepared.encoder)
        ood_tasks = {data.task.name: data.task for data in prepared.ood_splits.values()}
        for entry in detail["ood_sets"]:
            entry["seen_in_training"] = None if seen is None else bool(seen & ood_tasks[entry["task"]].class_keys())
        summary.update(
            ood_retained=detail["ood_retained"],
            tunnel=detail["tunnel"],
            pearson_id_ood=detail["pearson_id_ood"],
            transfer=detail,
        )
    return per_layer, summary, samples


def trained_on(encoder: Encoder) -> set[tuple[str, str]] | None:
    """The (dataset, class) pairs an encoder's training covered, when its card names the task; else None."""
    card = encoder.card or {}
    name = card.get("task")
    if not isinstance(name, str):
        return None
    try:
        return load_task(name, by_name_only=True).class_keys()
    except SubclassbenchError:
        return None


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


def _result(
    request: EvaluationRequest,
    prepared: Prepared,
    per_layer: list[dict[str, Any]],
    summary: dict[str, Any],
    timing: dict[str, float],
    stats: CacheStats,
    samples: SampleOutputs | None = None,
    uncertainty: dict[str, Any] | None = None,
) -> Result:
    task, splits = prepared.task, prepared.splits
    evaluation = next(iter(splits.values()))
    encoder = prepared.encoder.info()
    if request.weights_label is not None and encoder["weights"] is not None:
        encoder["weights"]["path"] = request.weights_label
    doc = {
        "schema_version": SCHEMA_VERSION,
        "protocol": {"version": PROTOCOL_VERSION, "fingerprint": protocol_fingerprint(), "params": PROTOCOL},
        "metrics": prepared.metrics,
        "notes": prepared.notes,
        "task": {
            "name": task.name,
            "version": task.version,
            "fingerprint": evaluation.fingerprint,
            "definition_fingerprint": task.definition_fingerprint,
            "manifest_sha256": evaluation.manifest_digest,
            "split": evaluation.split,
            "n_samples": len(evaluation),
            "n_superclasses": len(task.superclasses),
            "n_subclasses": task.n_subclasses,
            "data_source": evaluation.source,
            "splits": {name: d.record() for name, d in splits.items()},
            **({"ood_sets": _ood_records(task, prepared.ood_splits)} if prepared.ood_splits else {}),
        },
        "encoder": encoder,
        "environment": environment(),
        "seeds": {
            "kmeans": PROTOCOL["clusterability"]["seed"],
            "probe": PROTOCOL["transfer"]["probe"]["seed"],
            "torch_init": 0,
        },
        "layers": per_layer,
        "summary": summary,
        **({"uncertainty": uncertainty} if uncertainty is not None else {}),
        "run": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "timing_s": timing,
            "peak_memory_mb": _peak_memory_mb(),
            "feature_cache": {"mode": request.cache, **stats.to_dict()},
            "device": request.device,
            "compute": request.compute_record(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
    }
    return Result.from_doc(doc, samples=samples)


def _ood_records(task: Task, ood_splits: dict[str, SplitData]) -> list[dict[str, Any]]:
    assert task.transfer is not None
    out = []
    for ood in task.transfer.ood_sets:
        keys = {s: ood_key(ood.name, s) for s in (ood.train_split, ood.test_split)}
        if not all(k in ood_splits for k in keys.values()):
            continue
        data = ood_splits[keys[ood.test_split]]
        out.append(
            {
                "name": ood.name,
                "task": ood.task,
                "version": data.task.version,
                "definition_fingerprint": data.task.definition_fingerprint,
                "data_source": data.source,
                "splits": {s: ood_splits[k].record() for s, k in keys.items()},
            }
        )
    return out


RESULTS_ROOT = Path("results")
MAX_SHARDS = 10_000


def default_output_path(result: Result) -> Path:
    """results/<spec>[-w<weights sha>|-random]/<task>[.<split>].json: runs of different weights never collide.

    Every component is reduced to safe characters and the path is checked to
    stay inside ``results/``, whatever the spec, task or split names hold.
    """
    encoder = result["encoder"]
    folder = slug(encoder["spec"].replace(":", "__"))
    if encoder["weights"] is not None and encoder["tag"] is None:
        folder += f"-w{encoder['weights']['sha256'][:8]}"
    elif not encoder["pretrained"]:
        folder += "-random"
    task = result["task"]
    split = "" if task["split"] == "test" else f".{slug(task['split'])}"
    path = RESULTS_ROOT / folder / f"{slug(task['name'])}{split}.json"
    inside(RESULTS_ROOT, path, "the default result path")
    return path


def slug(text: str) -> str:
    """Letters, digits and ``._-``, never starting with a dot."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".") or "_"


def check_result_target(path: Path, request: EvaluationRequest, force: bool) -> None:
    """Before any work: ``--out`` must be a writable file path, and an existing file is replaced only when it
    is an earlier result of the same model on the same task (or with ``force``)."""
    check_file_name(path)  # first: the file system refuses even to look at a name that is too long
    check_output_path(path)
    check_writable_folder(path.parent)
    if not path.exists() or force:
        return
    try:
        earlier = Result.read(path)
    except SubclassbenchError:
        earlier = None
    task = load_task(request.task)
    if earlier is None or earlier.encoder["spec"] != request.model or earlier.task_name != task.name:
        raise SubclassbenchError(
            f"--out {path} exists and is not a result of {request.model} on {task.name}; "
            "pass --force to overwrite it, or choose another path"
        )


def evaluate_to_file(request: EvaluationRequest, out: Path | None = None, force: bool = False) -> tuple[Result, Path]:
    """Evaluate and write the result to ``out`` (or the default path); the target is checked before any work."""
    if out is not None:
        check_result_target(out, request, force)
    else:
        check_writable_folder(RESULTS_ROOT, "the results folder")
    result = evaluate(request)
    path = result.write(out or default_output_path(result))
    return result, path


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1-based) → (index, count), 0-based index."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SubclassbenchError(f"--shard needs I/N (e.g. 2/4), got '{text}'") from None
    if not 1 <= index <= count or count > MAX_SHARDS:
        raise SubclassbenchError(f"--shard {text}: I must be between 1 and N, and N at most {MAX_SHARDS}")
    return index - 1, count
