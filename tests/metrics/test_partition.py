"""Metric invariances against scikit-learn, in the style of sklearn's cluster test_common."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

from subclassbench.metrics.partition import cluster_scores, matched_accuracy, matched_count, purity

METRICS = {
    "ami": lambda t, p: cluster_scores(t, p)["ami"],
    "ari": lambda t, p: cluster_scores(t, p)["ari"],
    "nmi": lambda t, p: cluster_scores(t, p)["nmi"],
    "purity": purity,
    "matched_acc": matched_accuracy,
}
SYMMETRIC = ["ami", "ari", "nmi", "matched_acc"]
ADJUSTED = ["ami", "ari"]  # ≈ 0 for random labelings
NORMALIZED = ["nmi", "purity", "matched_acc"]  # in [0, 1]

rng = np.random.RandomState(0)
Y1 = rng.randint(0, 4, size=60)
Y2 = rng.randint(0, 4, size=60)


def _brute_force_matched(true: np.ndarray, pred: np.ndarray) -> int:
    classes, clusters = np.unique(true), np.unique(pred)
    best = 0
    for perm in itertools.permutations(classes, len(clusters)) if len(classes) >= len(clusters) else []:
        mapping = dict(zip(clusters, perm, strict=False))
        best = max(best, int(sum(mapping[p] == t for t, p in zip(true, pred, strict=False))))
    return best


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric(name):
    assert METRICS[name](Y1, Y2) == pytest.approx(METRICS[name](Y2, Y1))


def test_purity_is_not_symmetric():
    true = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0])
    assert purity(true, pred) == 0.5
    assert purity(pred, true) == 1.0


@pytest.mark.parametrize("name", METRICS)
def test_perfect_match_is_one_under_relabelling(name):
    relabelled = np.array([7, 3, 9, 1])[Y1]
    assert METRICS[name](Y1, relabelled) == pytest.approx(1.0)


@pytest.mark.parametrize("name", METRICS)
def test_permutation_of_cluster_labels(name):
    perm = np.array([2, 0, 3, 1])
    assert METRICS[name](Y1, perm[Y2]) == pytest.approx(METRICS[name](Y1, Y2))
    assert METRICS[name](perm[Y1], Y2) == pytest.approx(METRICS[name](Y1, Y2))


@pytest.mark.parametrize("name", METRICS)
def test_invariant_to_sample_order(name):
    order = rng.permutation(len(Y1))
    assert METRICS[name](Y1[order], Y2[order]) == pytest.approx(METRICS[name](Y1, Y2))


@pytest.mark.parametrize("name", NORMALIZED)
def test_normalized_bounds(name):
    for seed in range(20):
        r = np.random.RandomState(seed)
        value = METRICS[name](r.randint(0, 3, 30), r.randint(0, 5, 30))
        assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("name", ADJUSTED)
def test_adjusted_random_is_near_zero(name):
    r = np.random.RandomState(1)
    values = [METRICS[name](r.randint(0, 3, 2000), r.randint(0, 3, 2000)) for _ in range(5)]
    assert abs(np.mean(values)) < 0.01
    assert all(-1.0 <= v <= 1.0 for v in values)


def test_matches_sklearn():
    scores = cluster_scores(Y1, Y2)
    assert scores["ami"] == pytest.approx(adjusted_mutual_info_score(Y1, Y2))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(Y1, Y2))
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(Y1, Y2))


@pytest.mark.parametrize("seed", range(5))
def test_matched_count_is_the_best_one_to_one_map(seed):
    r = np.random.RandomState(seed)
    true, pred = r.randint(0, 3, 25), r.randint(0, 3, 25)
    assert matched_count(true, pred) == _brute_force_matched(true, pred)


def test_purity_against_definition():
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2])
    # cluster 0 → {0,0}: 2; cluster 1 → {0,1,1,2}: 2; cluster 2 → {2,2,2}: 3
    assert purity(true, pred) == pytest.approx(7 / 9)


def test_single_cluster_scores():
    true = np.array([0, 0, 1, 1])
    pred = np.zeros(4, dtype=int)
    scores = cluster_scores(true, pred)
    assert scores["ami"] == pytest.approx(0.0)
    assert scores["ari"] == pytest.approx(0.0)
    assert scores["matched_acc"] == pytest.approx(0.5)
