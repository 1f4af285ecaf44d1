"""The evaluation pipeline: task → encoder → features → protocol → result.

``evaluate()`` is what ``subclassbench evaluate`` runs; the pieces stay
separate so that extraction (costly, GPU-friendly) and scoring (CPU) can be
run and cached independently.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from subclassbench import __version__
from subclassbench.encoders import EncoderSpec, load_encoder
from subclassbench.features import extract_features
from subclassbench.protocol import PROTOCOL_V1, PROTOCOL_VERSION, protocol_fingerprint, score_layers, summarize
from subclassbench.results import SCHEMA_VERSION
from subclassbench.tasks import load_task

DEFAULT_MODEL = "builtin:digits_cnn.digits5_coarse"
DEFAULT_TASK = "digits-5"


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


def evaluate(request: EvaluationRequest) -> dict[str, Any]:
    """Run protocol v1 and return the result document (not yet written)."""
    started = time.perf_counter()
    EncoderSpec.parse(request.model)  # a malformed spec fails before any data is read
    task = load_task(request.task)
    split = task.load_split(request.split, request.data)
    encoder = load_encoder(
        request.model,
        weights=request.weights,
        sample_shape=split.images.sample_shape,
        num_classes=len(task.superclasses),
        pretrained=request.pretrained,
    )
    layers = encoder.select_layers(request.layers)
    loaded = time.perf_counter()
    features = extract_features(encoder, split.images, layers, request.batch_size, request.device, request.progress)
    extracted = time.perf_counter()
    scored = score_layers(features, split, request.progress)
    done = time.perf_counter()
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": {"version": PROTOCOL_VERSION, "fingerprint": protocol_fingerprint(), "params": PROTOCOL_V1},
        "task": {
            "name": task.name,
            "version": task.version,
            "fingerprint": split.fingerprint,
            "definition_fingerprint": task.definition_fingerprint,
            "manifest_sha256": split.manifest_digest,
            "split": split.split,
            "n_samples": len(split),
            "n_superclasses": len(task.superclasses),
            "n_subclasses": task.n_subclasses,
            "data_source": split.source,
        },
        "encoder": encoder.info(),
        "environment": environment(),
        "seeds": {"kmeans": PROTOCOL_V1["clusterability"]["seed"], "torch_init": 0},
        "layers": scored,
        "summary": summarize(scored),
        "run": {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "timing_s": {
                "load": round(loaded - started, 3),
                "extract": round(extracted - loaded, 3),
                "score": round(done - extracted, 3),
                "total": round(done - started, 3),
            },
            "peak_memory_mb": _peak_memory_mb(),
            "device": request.device,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
    }


def default_output_path(result: dict[str, Any]) -> Path:
    slug = result["encoder"]["spec"].replace(":", "__").replace("/", "_").replace("@", "_")
    return Path("results") / slug / f"{result['task']['name']}.json"
