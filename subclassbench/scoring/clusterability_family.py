"""The clusterability family: subclass clusterability per layer, reconstruction accuracy and the committed layer.

The split it reads besides the evaluated one: the train split, on which reconstruction accuracy fits its
superclass probe; when it is absent the result says so in a note. The committed layer is chosen on the
evaluated split itself, by cross-fitting its two hash halves (protocol v3, :mod:`~subclassbench.scoring.commitment`):
no validation split, so no layer is chosen on images a network trained on. The (layer, superclass)
units run in the worker pool (:class:`~subclassbench.scoring.clusterability.StartedLayers`), so they
overlap with the transfer family's probes, which train in this process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.core.progress import stage
from subclassbench.errors import DataMissingError
from subclassbench.scoring.clusterability import StartedLayers, summarize
from subclassbench.scoring.commitment import commit, committed_layer_names
from subclassbench.scoring.family import METRIC_FAMILIES, DataPlan, FamilyRun, MetricFamily, Scored, ScoringInputs
from subclassbench.tasks.task import Task


def reconstruction_split(task: Task) -> str | None:
    """The train split reconstruction accuracy fits its clusters and superclass probe on."""
    if task.transfer is not None:
        return task.transfer.id_train_split
    return "train" if "train" in task.splits else None


def _stacked(arrays: list[np.ndarray | None]) -> np.ndarray:
    """Per-layer arrays as one (layers × …) array; every layer computed them, so none is missing."""
    present = [a for a in arrays if a is not None]
    assert len(present) == len(arrays), "a layer lacks a per-sample array its family computed for all"
    return np.stack(present)


def ward_layers(summary: dict[str, Any]) -> list[str]:
    """The layers whose Ward assignments the per-sample file keeps: the committed ones and the best."""
    best = [summary["best_layer"]] if summary.get("best_layer") else []
    return list(dict.fromkeys(committed_layer_names(summary) + best))


class Clusterability(MetricFamily):
    name = "clusterability"

    def load_splits(self, plan: DataPlan) -> bool:
        task, evaluation, splits = plan.task, plan.evaluation, plan.splits
        train = reconstruction_split(task)
        if train and train != evaluation.split and train not in splits:
            try:
                splits[train] = plan.load(train)
            except DataMissingError as exc:
                plan.notes.append(
                    f"no reconstruction accuracy (needs the '{train}' split; pass --data with every split): {exc}"
                )
        if train == evaluation.split:
            plan.notes.append(
                "no reconstruction accuracy: it fits on the train split, which is the evaluated split here"
            )
        return True

    def start(self, inputs: ScoringInputs) -> FamilyRun:
        return _ClusterabilityRun(inputs)


class _ClusterabilityRun(FamilyRun):
    def __init__(self, inputs: ScoringInputs) -> None:
        task, evaluation, features = inputs.task, inputs.evaluation, inputs.features
        self.inputs = inputs
        self.first = features[evaluation.split]
        train = reconstruction_split(task)
        reference = (features[train], inputs.splits[train]) if train in features and train != evaluation.split else None
        stage(f"clusterability of {len(self.first)} layers", inputs.progress)
        self.started = StartedLayers(
            self.first, evaluation, inputs.progress, reference, True, inputs.device, inputs.pool
        )
        self.started.head_pred = inputs.head_superclass_pred if reference is not None else None

    def finish(self, scored: Scored) -> None:
        evaluation = self.inputs.evaluation
        clustered = self.started.finish()
        for entry, layer_clusters in zip(scored.per_layer, clustered, strict=True):
            entry[Clusterability.name] = layer_clusters.scores
        scored.summary.update(summarize(scored.per_layer))
        scored.samples.kmeans = np.stack([c.kmeans for c in clustered])
        if self.started.train is not None:
            scored.samples.superclass_pred = _stacked([c.superclass_pred for c in clustered])
            scored.samples.reconstructed = _stacked([c.reconstructed for c in clustered])
            if self.started.head_pred is not None:
                scored.samples.head_superclass_pred = self.started.head_pred
                scored.samples.head_reconstructed = _stacked([c.head_reconstructed for c in clustered])
                head_right = self.started.head_pred == evaluation.superclass
                scored.summary["head_superclass_acc"] = float(head_right.mean())
        names = [f.name for f in self.first]
        ward = {i: c.ward[0] for i, c in enumerate(clustered) if c.ward is not None}  # factor 1: k clusters
        shares = scored.samples.committed_shares()
        scored.summary.update(
            commit(
                names, evaluation.superclass, evaluation.subclass, scored.samples.kmeans, shares, evaluation.split,
                ward or None,
            )
        )  # fmt: skip
        names = [f.name for f in self.first]
        kept = [n for n in ward_layers(scored.summary) if clustered[names.index(n)].ward is not None]
        if kept:
            scored.samples.ward_layers = kept
            scored.samples.ward = _stacked([clustered[names.index(n)].ward for n in kept])


METRIC_FAMILIES.register(Clusterability.name, Clusterability())
