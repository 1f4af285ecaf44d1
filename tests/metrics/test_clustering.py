"""Clustering back ends (subclassbench.metrics.clustering): faiss k-means deterministic on all points, L2
normalisation of zero rows, Ward cuts."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.metrics.clustering import kmeans_faiss, kmeans_fit, kmeans_sklearn, l2_normalize
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


def test_the_seed_chooses_the_start_and_the_same_seed_the_same_partition():
    """Structureless points have many local optima: random-sample starts from different seeds end in different
    partitions (the seed reaches faiss, it is not its default), and one seed always in the same one."""
    x = np.random.RandomState(1).rand(300, 2).astype(np.float32)
    runs = {seed: kmeans_fit(x, 6, n_init=1, max_iter=5, seed=seed)[1] for seed in range(4)}
    assert np.array_equal(kmeans_fit(x, 6, n_init=1, max_iter=5, seed=2)[1], runs[2])
    assert len({r.tobytes() for r in runs.values()}) > 1


def test_a_small_superclass_is_clustered_without_faiss_warnings(capfd):
    """faiss warns on stderr below 39 points per centroid by default; a superclass of a few dozen images is
    normal here, so the floor is one point per centroid and nothing is printed."""
    x = np.random.RandomState(2).randn(10, 3).astype(np.float32)
    centroids, labels = kmeans_fit(x, 6, n_init=2, max_iter=10, seed=0)  # under 2 points per centroid too
    assert centroids.shape == (6, 3) and labels.shape == (10,) and labels.dtype == np.int64
    assert "WARNING clustering" not in capfd.readouterr().err  # faiss's words; other libraries may print


def test_the_scikit_learn_reference_is_lloyd_from_random_starts_at_the_seed():
    from sklearn.cluster import KMeans

    x = np.random.RandomState(3).rand(200, 3)
    for seed in (0, 1):
        expected = KMeans(6, init="random", n_init=2, max_iter=50, tol=0.0, random_state=seed, algorithm="lloyd")
        got = kmeans_sklearn(x, 6, n_init=2, max_iter=50, seed=seed)
        assert np.array_equal(got, expected.fit_predict(x)) and got.dtype == np.int64


def test_l2_normalize_handles_one_row_and_no_rows():
    np.testing.assert_allclose(l2_normalize(np.asarray([[0.0, 3.0, 4.0]])), [[0.0, 0.6, 0.8]])
    empty = l2_normalize(np.zeros((0, 5)))
    assert empty.shape == (0, 5) and empty.dtype == np.float32


def test_ward_cuts_of_fewer_than_two_points_are_one_cluster():
    from subclassbench.metrics.clustering import ward_cuts

    one = ward_cuts(np.ones((1, 3), dtype=np.float32), [2, 5])
    assert sorted(one) == [2, 5] and all(v.tolist() == [0] and v.dtype == np.int64 for v in one.values())
    none = ward_cuts(np.ones((0, 3), dtype=np.float32), [2])
    assert none[2].shape == (0,)


def test_ward_cut_labels_are_integers_numbered_from_zero():
    from subclassbench.metrics.clustering import ward_cuts

    x = np.random.RandomState(4).randn(30, 4).astype(np.float32)
    for k, labels in ward_cuts(x, [2, 5, 9]).items():
        assert labels.dtype == np.int64 and sorted(set(labels.tolist())) == list(range(k))
