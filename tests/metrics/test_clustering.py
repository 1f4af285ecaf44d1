"""Clustering back ends (subclassbench.metrics.clustering): faiss k-means deterministic on all points, L2
normalisation of zero rows, Ward cuts."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.metrics.clustering import kmeans_faiss, kmeans_sklearn, l2_normalize
from subclassbench.metrics.partition import cluster_scores

# --------------------------------------------------------------------------- k-means back ends


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


# --------------------------------------------------------------------------- Ward cuts


def test_ward_cuts_cap_k_at_the_number_of_points():
    from subclassbench.metrics.clustering import ward_cuts

    x = np.asarray([[0.0, 1.0], [0.0, 1.1], [5.0, 0.0]], dtype=np.float32)
    cuts = ward_cuts(x, [2, 10])
    assert sorted(cuts) == [2, 3]  # 10 clusters of 3 points is 3 singletons
    assert cuts[2][0] == cuts[2][1] != cuts[2][2] and len(set(cuts[3].tolist())) == 3
