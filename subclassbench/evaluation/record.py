"""A result document assembled from an evaluation: the task, encoder, protocol, environment and run records."""

from __future__ import annotations

import platform
import resource
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import torch

from subclassbench.core.version import __version__
from subclassbench.evaluation.request import EvaluationRequest, Prepared
from subclassbench.features.cache import CacheStats
from subclassbench.results.result import SCHEMA_VERSION, Result
from subclassbench.scoring.commitment import exposure
from subclassbench.scoring.protocol import PROTOCOL, PROTOCOL_VERSION, protocol_fingerprint
from subclassbench.scoring.samples import SampleOutputs
from subclassbench.scoring.transfer import ood_key
from subclassbench.tasks.task import SplitData, Task


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


def result_document(
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
    if "selection" in summary and summary["selection"].get("method") == "crossfit":
        trained = encoder["weights"] is not None or bool(encoder["pretrained"])
        seen, basis = exposure(request.saw_evaluation_split, prepared.encoder.card, trained, evaluation.split)
        summary["selection"]["seen_in_training"], summary["selection"]["seen_basis"] = seen, basis
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
            **({"ood_sets": ood_records(task, prepared.extra_splits)} if prepared.extra_splits else {}),
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


def ood_records(task: Task, ood_splits: dict[str, SplitData]) -> list[dict[str, Any]]:
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
