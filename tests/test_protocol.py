"""Protocol clusterability (k-means within superclasses) on data with known structure."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.metrics.clustering import kmeans_faiss, kmeans_sklearn, l2_normalize
from subclassbench.metrics.partition import cluster_scores
from subclassbench.results.result import validate_result
from subclassbench.scoring.clusterability import score_clusterability
from subclassbench.scoring.protocol import PROTOCOL, protocol_fingerprint
from subclassbench.tasks.task import Task, builtin_tasks_dir, read_task_file
from tests.conftest import without_run


def synthetic(separation: float, seed: int = 0) -> Task:
    raw = read_task_file(builtin_tasks_dir() / "synthetic-hier.yaml")
    raw["data"]["params"].update(subclass_separation=separation, seed=seed)
    return Task.from_dict(raw)


def test_ami_rises_with_subclass_separation():
    amis = []
    for separation in (0.0, 1.0, 2.0, 4.0, 8.0):
        split = synthetic(separation).load_split("test")
        scores = score_clusterability(split.images.array, split)
        amis.append(scores["ami"])
    assert amis[0] < 0.05  # no subclass structure → chance
    assert amis[-1] > 0.95  # far-apart subclasses → recovered
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(amis))  # monotone up to k-means noise
    assert amis[3] > amis[1] + 0.3


def test_within_superclass_acc_is_matched_counts_over_all_samples():
    split = synthetic(2.0).load_split("test")
    scores = score_clusterability(split.images.array, split)
    per = scores["per_superclass"]
    assert sum(p["n"] for p in per) == len(split)
    expected = sum(p["matched_acc"] * p["n"] for p in per) / len(split)
    assert scores["within_superclass_acc"] == pytest.approx(expected)
    assert scores["ami"] == pytest.approx(np.mean([p["ami"] for p in per]))
    assert scores["ward"] is not None and -1 <= scores["ward"]["ami"] <= 1


def test_scores_do_not_depend_on_feature_scale():
    split = synthetic(3.0).load_split("test")
    a = score_clusterability(split.images.array, split)
    b = score_clusterability(split.images.array * 1000.0, split)  # L2 normalisation removes scale
    assert a["ami"] == pytest.approx(b["ami"], abs=1e-6)


def test_faiss_uses_all_points_and_is_deterministic():
    rng = np.random.RandomState(0)
    x = np.concatenate([rng.randn(3000, 8) + 6, rng.randn(3000, 8) - 6]).astype(np.float32)
    truth = np.repeat([0, 1], 3000)
    a = kmeans_faiss(x, 2, n_init=3, max_iter=20, seed=0)
    b = kmeans_faiss(x, 2, n_init=3, max_iter=20, seed=0)
    assert np.array_equal(a, b)
    assert cluster_scores(truth, a)["ami"] == pytest.approx(1.0)
    assert cluster_scores(truth, kmeans_sklearn(x, 2, n_init=3, max_iter=20, seed=0))["ami"] == pytest.approx(1.0)


def test_l2_normalize_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])


def test_protocol_fingerprint_covers_every_parameter(monkeypatch):
    before = protocol_fingerprint()
    for section, key, value in (
        ("clusterability", "n_init", 11),
        ("transfer", "epoch_selection", "the test set"),
        ("transfer", "tunnel_strength", {}),
    ):
        changed = copy.deepcopy(PROTOCOL)
        changed[section][key] = value
        monkeypatch.setattr("subclassbench.scoring.protocol.PROTOCOL", changed)
        assert protocol_fingerprint() != before


def test_evaluate_is_deterministic_and_schema_valid():
    request = EvaluationRequest(model="builtin:identity", task="synthetic-hier", progress=False)
    a, b = evaluate(request), evaluate(request)
    validate_result(a)
    assert without_run(a) == without_run(b)
    assert [layer["name"] for layer in a["layers"]] == ["embedding"]
    assert a["layers"][0]["clusterability"]["ami"] > 0.5
