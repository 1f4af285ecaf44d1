"""The metric-family interface: what a family of protocol metrics needs, and how it scores every layer.

The pipeline (:mod:`subclassbench.evaluation.pipeline`) knows the families only through this
interface and :data:`METRIC_FAMILIES`. A family

1. says whether a task supports it (:meth:`MetricFamily.unsupported`);
2. checks its inputs before any data is read (:meth:`MetricFamily.check`);
3. adds the splits it needs to the evaluation's (:meth:`MetricFamily.load_splits`), and any extra sets
   of other tasks (:meth:`MetricFamily.load_extra_splits`: transfer's OOD sets), all of which are extracted;
4. scores every layer in three steps, so that families overlap: :meth:`MetricFamily.start` submits work
   to the worker pool and returns at once; :meth:`FamilyRun.run` does the work that needs this process
   (training probes) while the workers cluster; :meth:`FamilyRun.finish` collects and writes the family's
   per-layer records, summary fields and per-sample outputs.

To add a family: subclass :class:`MetricFamily` in a module of its own, register an instance in
:data:`METRIC_FAMILIES` there, and add the module to the registry's providers below. The result's
schema, its integrity check and its intervals then learn the family's fields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from subclassbench.core.registry import Registry
from subclassbench.core.workerpool import WorkerPool
from subclassbench.errors import SubclassbenchError
from subclassbench.features.extraction import LayerFeatures
from subclassbench.scoring.samples import SampleOutputs
from subclassbench.tasks.task import SplitData, Task


@dataclass
class DataPlan:
    """What a family gets while the evaluation's data is loaded."""

    task: Task
    evaluation: SplitData
    splits: dict[str, SplitData]  # loaded so far, the evaluation split first; a family adds what it needs
    load: Callable[[str], SplitData]  # one of the task's splits (raises DataMissingError when absent)
    notes: list[str]
    explicit: bool  # asked for by name: missing data is then an error, not a note


@dataclass
class ScoringInputs:
    """Everything a family scores from: the loaded splits and every layer's features on each of them."""

    task: Task
    evaluation: SplitData
    splits: dict[str, SplitData]
    extra_splits: dict[str, SplitData]  # the sets of :meth:`MetricFamily.load_extra_splits`
    features: dict[str, list[LayerFeatures]]  # split (or extra set) → the layers' features, in layer order
    layers: list[str]
    encoder_card: dict[str, Any] | None  # the encoder's model card (what it was trained on), if it has one
    notes: list[str]
    device: str
    progress: bool
    pool: WorkerPool
    head_superclass_pred: np.ndarray | None = None  # (n,) the encoder's own head's superclass, when it has one


@dataclass
class Scored:
    """What the families write: one record per layer (under each family's name), the summary, per-sample outputs."""

    per_layer: list[dict[str, Any]]
    summary: dict[str, Any]
    samples: SampleOutputs


class FamilyRun(ABC):
    """One family's scoring of one evaluation, started."""

    def run(self) -> None:  # noqa: B027  (optional step: most families have nothing to do in this process)
        """Work that needs this process; it runs while the worker pool scores other families' units."""

    @abstractmethod
    def finish(self, scored: Scored) -> None:
        """Wait for this family's units and write its records, summary fields and per-sample outputs."""


class MetricFamily(ABC):
    """A family of protocol metrics (``--metrics NAME``)."""

    name: ClassVar[str]
    # Whether the family reads datasets named on the command line (``--ood-data NAME=PATH``).
    takes_named_data: ClassVar[bool] = False

    def unsupported(self, task: Task) -> str | None:
        """Why ``task`` cannot be scored by this family (and what to do), or None when it can."""
        return None

    def by_default(self, task: Task) -> bool:
        """Whether an evaluation that names no families runs this one."""
        return self.unsupported(task) is None

    def check(self, task: Task, named_data: dict[str, str] | None) -> None:  # noqa: B027  (optional hook)
        """Checks that need no data (run before any split is read)."""

    @abstractmethod
    def load_splits(self, plan: DataPlan) -> bool:
        """Add the splits this family needs to ``plan.splits``; False drops the family (with a note)."""

    def load_extra_splits(
        self, task: Task, data: str | None, named_data: dict[str, str] | None, notes: list[str]
    ) -> dict[str, SplitData]:
        """Sets from other tasks that this family scores too (keyed uniquely), extracted like the splits."""
        return {}

    @abstractmethod
    def start(self, inputs: ScoringInputs) -> FamilyRun:
        """Begin scoring: submit work to ``inputs.pool`` and return without waiting for it."""


METRIC_FAMILIES: Registry[MetricFamily] = Registry(
    "metric family",
    # Imported on first lookup; their order is the order of the families in every result.
    providers=("subclassbench.scoring.clusterability_family", "subclassbench.scoring.transfer_family"),
)


def resolve_families(task: Task, requested: list[str] | None) -> list[str]:
    """``None`` means every family the task supports, in registry order; explicit names are checked."""
    names = METRIC_FAMILIES.names()
    if requested is None:
        return [name for name in names if METRIC_FAMILIES.get(name).by_default(task)]
    unknown = [m for m in requested if m not in names]
    if unknown or not requested:
        raise SubclassbenchError(f"unknown metric '{(unknown or [''])[0]}'; choose from {', '.join(names)}")
    for name in requested:
        reason = METRIC_FAMILIES.get(name).unsupported(task)
        if reason is not None:
            raise SubclassbenchError(reason)
    return [name for name in names if name in requested]
