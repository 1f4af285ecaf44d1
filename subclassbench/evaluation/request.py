"""What an evaluation is asked to do (:class:`EvaluationRequest`, every option checked before any work), and what
it resolved to before extraction (:class:`Prepared`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from subclassbench.core.workerpool import available_cores
from subclassbench.encoders.base import Encoder, EncoderSpec
from subclassbench.errors import SubclassbenchError
from subclassbench.features.cache import FeatureCache
from subclassbench.features.extraction import DTYPES, ExtractionContext
from subclassbench.tasks.datasources import DECODERS
from subclassbench.tasks.task import SplitData, Task
from subclassbench.uncertainty.bootstrap import BOOTSTRAP

DEFAULT_MODEL = "builtin:digits_cnn.digits5_coarse"
DEFAULT_TASK = "digits-5"
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
    # Whether the encoder trained on the evaluation split's images (None: not known); the result records it beside
    # the committed layer, which protocol v3 chooses on that split (scoring.commitment.exposure).
    saw_evaluation_split: bool | None = None
    # The task whose superclasses the encoder's head was trained on (model.yaml labels superclass + label_task);
    # None: a train card's, if any. Reconstruction through the head is reported when it is the evaluated task.
    head_task: str | None = None
    # OOD set name → its data (default: ``data``, which serves OOD sets drawn from the same dataset).
    ood_data: dict[str, str] | None = None
    # Bootstrap resamples for the confidence intervals (0: no intervals; the per-sample file is written anyway).
    bootstrap: int = int(BOOTSTRAP["resamples"])
    # A seeded, subclass-stratified subset of at most this many samples per split: quick tries, never ranked.
    limit: int | None = None
    dtype: str = "fp32"  # forward-pass precision: fp32 (the protocol's reference) or bf16 (autocast)
    channels_last: bool = False  # NHWC memory layout for the forward pass
    workers: int | None = None  # loader processes for encoded images (None: one per core but one)
    decoder: str = "pil"  # encoded images: "pil" (the reference) or "torchvision" (on the device)
    # Processes scoring clusterability's (layer, superclass) units (1: in this process; 0: one per core).
    score_workers: int = 1
    # Constructor arguments of a spec's model (``--model-arg``): timm kwargs such as pad_type, builtin switches.
    model_args: dict[str, Any] | None = None
    # The Python API's own model (``model`` is then ``module:<name>``): an nn.Module, its preprocessing
    # (a Preprocessing or its fields; default: the task's samples as they come) and embedding function.
    # For a spec, ``preprocess`` is a mapping of fields that replace the encoder's own (``--preprocess``).
    module: Any = None
    preprocess: Any = None
    embed: Any = None
    # A name for the module's state, for the cache, where its code cannot be fingerprinted (see encoders/fingerprint).
    cache_key: str | None = None

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
    # Sets of other tasks that a family scores too (transfer's OOD sets, keyed by transfer.ood_key(set, split)).
    extra_splits: dict[str, SplitData]
    encoder: Encoder
    layers: list[str]
    started: float
    loaded: float
