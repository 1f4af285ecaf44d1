"""scoring/family.py: a third metric family runs through the pipeline without a change to the pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import prepare, score
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.features.cache import CacheStats
from subclassbench.features.extraction import extract_cached
from subclassbench.scoring.family import (
    METRIC_FAMILIES,
    DataPlan,
    FamilyRun,
    MetricFamily,
    Scored,
    ScoringInputs,
    resolve_families,
)
from subclassbench.tasks.task import load_task

EVENTS: list[str] = []


class RowCount(MetricFamily):
    """A toy family: each layer's width and the number of evaluation rows, and a summary of its own."""

    name = "row_count"

    def load_splits(self, plan: DataPlan) -> bool:
        EVENTS.append(f"load_splits {sorted(plan.splits)}")
        return True

    def start(self, inputs: ScoringInputs) -> FamilyRun:
        EVENTS.append("start")
        return _RowCountRun(inputs)


class _RowCountRun(FamilyRun):
    def __init__(self, inputs: ScoringInputs) -> None:
        self.inputs = inputs

    def run(self) -> None:
        EVENTS.append("run")

    def finish(self, scored: Scored) -> None:
        EVENTS.append("finish")
        layers = self.inputs.features[self.inputs.evaluation.split]
        for entry, layer in zip(scored.per_layer, layers, strict=True):
            entry[RowCount.name] = {"rows": int(layer.shape[0]), "width": int(layer.shape[1])}
        scored.summary["row_count_layers"] = len(layers)


@pytest.fixture
def registered() -> Iterator[None]:
    METRIC_FAMILIES.names()  # the built-in families register on first lookup; a new one follows them
    METRIC_FAMILIES.register(RowCount.name, RowCount())
    EVENTS.clear()
    try:
        yield
    finally:
        METRIC_FAMILIES._entries.pop(RowCount.name)  # the registry offers no removal: families are for good


def test_a_registered_family_is_scored_beside_the_protocol_families(registered):
    request = EvaluationRequest(metrics=["clusterability", RowCount.name], progress=False, cache="off")
    prepared = prepare(request)
    assert prepared.metrics == ["clusterability", RowCount.name]  # the registry's order
    features = {
        name: extract_cached(request.context(prepared.encoder, data, prepared.layers), None, CacheStats())
        for name, data in prepared.splits.items()
    }
    per_layer, summary, samples = score(prepared, features, progress=False)
    n_test = len(prepared.splits["test"])
    assert [e[RowCount.name]["rows"] for e in per_layer] == [n_test] * len(prepared.layers)
    assert [e[RowCount.name]["width"] for e in per_layer] == [e["dim"] for e in per_layer]
    assert summary["row_count_layers"] == len(prepared.layers)
    # The protocol's own family still ran, and the families' records keep the families' order.
    assert "committed_layer" in summary and samples.kmeans is not None
    assert list(per_layer[0])[-2:] == ["clusterability", RowCount.name]
    # Splits were loaded once per family, then every family started before any of them ran or finished.
    assert EVENTS == ["load_splits ['test', 'train']", "start", "run", "finish"]


def test_families_resolve_by_task_and_refuse_unknown_names(registered):
    digits = load_task("digits-5")
    assert resolve_families(digits, None) == ["clusterability", "transfer", RowCount.name]
    assert resolve_families(digits, ["transfer"]) == ["transfer"]
    no_transfer = load_task("digits-ood5")  # an OOD set: no transfer block of its own
    assert resolve_families(no_transfer, None) == ["clusterability", RowCount.name]
    with pytest.raises(SubclassbenchError, match="task 'digits-ood5' defines no transfer splits"):
        resolve_families(no_transfer, ["transfer"])
    with pytest.raises(SubclassbenchError, match="unknown metric 'ami'; choose from clusterability, transfer, row_"):
        resolve_families(digits, ["ami"])
