"""The clusterability family: subclass clusterability per layer, reconstruction accuracy and the committed layer.

The splits it reads, besides the evaluated one: the validation split, on which the committed layer is
chosen (k-means AMI only), and the train split, on which reconstruction accuracy fits its superclass
probe. Either may be absent; the result then says what is missing, in a note. The (layer, superclass)
units run in the worker pool (:class:`~subclassbench.scoring.clusterability.StartedLayers`), so they
overlap with the transfer family's probes, which train in this process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.core.progress import stage
from subclassbench.errors import DataMissingError, SubclassbenchError
from subclassbench.scoring.clusterability import StartedLayers, commit_layer, summarize
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
    """The layers whose Ward assignments the per-sample file keeps: the committed and the best."""
    return list(dict.fromkeys(n for n in (summary.get("committed_layer"), summary.get("best_layer")) if n))


class Clusterability(MetricFamily):
    name = "clusterability"

    def load_splits(self, plan: DataPlan) -> bool:
        task, evaluation, splits = plan.task, plan.evaluation, plan.splits
        val = task.validation_split
        if val and val != evaluation.split:
            try:
                splits[val] = plan.load(val)
            except DataMissingError as exc:  # absent: no committed layer; present but corrupt: an error
                plan.notes.append(
                    f"no committed layer (needs the '{val}' split; pass --data with every split): {exc}"
                )
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
        self.val = task.validation_split
        self.validation: StartedLayers | None = None
        if self.val in features and self.val != evaluation.split:
            try:  # the validation split only chooses the layer: k-means AMI, no Ward, no reconstruction
                self.validation = StartedLayers(
                    features[self.val], inputs.splits[self.val], inputs.progress, None, False, inputs.device,
                    inputs.pool,
                )  # fmt: skip
            except SubclassbenchError as exc:  # e.g. a subset too small to cluster: report, don't fail
                inputs.notes.append(f"no committed layer: the '{self.val}' split cannot be scored ({exc})")

    def finish(self, scored: Scored) -> None:
        clustered = self.started.finish()
        for entry, layer_clusters in zip(scored.per_layer, clustered, strict=True):
            entry[Clusterability.name] = layer_clusters.scores
        scored.summary.update(summarize(scored.per_layer))
        scored.samples.kmeans = np.stack([c.kmeans for c in clustered])
        if self.started.train is not None:
            scored.samples.superclass_pred = _stacked([c.superclass_pred for c in clustered])
            scored.samples.reconstructed = _stacked([c.reconstructed for c in clustered])
        if self.validation is not None:
            try:
                validation = [c.scores for c in self.validation.finish()]
            except SubclassbenchError as exc:
                self.inputs.notes.append(f"no committed layer: the '{self.val}' split cannot be scored ({exc})")
            else:
                scored.summary.update(commit_layer(scored.per_layer, validation, str(self.val)))
        names = [f.name for f in self.first]
        kept = [n for n in ward_layers(scored.summary) if clustered[names.index(n)].ward is not None]
        if kept:
            scored.samples.ward_layers = kept
            scored.samples.ward = _stacked([clustered[names.index(n)].ward for n in kept])


METRIC_FAMILIES.register(Clusterability.name, Clusterability())
