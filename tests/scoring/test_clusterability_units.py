"""One superclass's unit of clusterability work (subclassbench.scoring.clusterability_units) and what the layer
makes of it: a cluster no train row falls in, a superclass too large for Ward, overclustering keyed by factor."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.features.matrices import Matrix, Rows
from subclassbench.metrics.clustering import l2_normalize
from subclassbench.metrics.partition import purity
from subclassbench.scoring.clusterability import PARAMS, cluster_layer
from subclassbench.scoring.clusterability_units import (
    KMeansParams,
    cluster_superclass,
    name_rows,
    named_centroids,
    portable,
)
from tests.scoring.test_clusterability import CENTRES, blobs, split_of, two_by_two

PARAMS_FAST = KMeansParams(n_init=3, max_iter=20, seed=0)


def test_a_cluster_no_train_row_falls_in_names_no_subclass():
    """Dead features: every train row of the superclass is the same point, so k-means keeps one cluster with
    rows and one without. Hungarian matching names the first by its majority subclass; the empty one names
    none (-1), and whatever lands in it is counted wrong downstream (never subclass 1 by accident)."""
    rows = np.tile(np.asarray([[1, 0, 0, 0]], dtype=np.float32), (10, 1))
    subclass = np.asarray([2] * 6 + [5] * 4)  # dataset ids, not positions: the name is the majority's id
    centroids, name = named_centroids(rows, subclass, 2, PARAMS_FAST)
    assert centroids.shape == (2, 4)
    assert sorted(name.tolist()) == [-1, 2]
    assert name.dtype == np.int64
    named = name_rows(np.asarray([[1, 0, 0, 0], [0, 3, 0, 0], [-1, 0, 0, 0]], dtype=np.float32), centroids, name)
    assert set(named.tolist()) <= {-1, 2}


def test_every_cluster_named_once_when_each_holds_train_rows():
    labels = [v for v in range(2) for _ in range(15)]
    x = blobs(labels, CENTRES, 0)
    centroids, name = named_centroids(x, np.asarray(labels) + 7, 2, PARAMS_FAST)
    assert sorted(name.tolist()) == [7, 8]
    test = blobs(labels, CENTRES, 1)
    assert name_rows(test, centroids, name).tolist() == [v + 7 for v in labels]


def test_without_ward_factors_a_unit_has_no_ward_scores():
    labels = [v for v in range(2) for _ in range(10)]
    unit = cluster_superclass(blobs(labels, CENTRES, 2), np.asarray(labels), 2, PARAMS_FAST, None)
    assert unit.ward is None
    assert unit.matched == 20 and unit.scores["ami"] == pytest.approx(1.0)


def test_overclustering_is_keyed_by_factor_and_agrees_with_scikit_learn():
    labels = [v for v in range(2) for _ in range(20)]
    x = blobs(labels, CENTRES, 3) + 2.0 * np.random.RandomState(4).randn(40, 4).astype(np.float32)
    truth = np.asarray(labels)
    unit = cluster_superclass(x, truth, 2, PARAMS_FAST, (3, 1))  # any order: looked up by factor
    assert unit.ward is not None
    assert set(unit.ward["overcluster"]) == {1, 3} and set(unit.ward["cuts"]) == {1, 3}
    for f in (1, 3):
        pred = AgglomerativeClustering(n_clusters=2 * f, linkage="ward").fit_predict(l2_normalize(x))
        assert unit.ward["overcluster"][f]["ami"] == pytest.approx(adjusted_mutual_info_score(truth, pred), abs=1e-12)
        assert unit.ward["overcluster"][f]["purity"] == pytest.approx(purity(truth, pred), abs=1e-12)
    assert unit.ward["scores"]["ami"] == unit.ward["overcluster"][1]["ami"]


def test_a_superclass_above_wards_limit_leaves_the_layer_without_ward(monkeypatch):
    """Ward is O(n²): a superclass over ``max_points`` is not cut, and a layer mean over only the other
    superclasses would compare unlike things, so the layer has no Ward scores at all; k-means is unaffected."""
    task = two_by_two()
    labels = [0] * 12 + [1] * 12 + [2] * 5 + [3] * 5  # the animals 24 rows, the vehicles 10
    split = split_of(task, "test", labels)
    x = blobs(labels, CENTRES, 5)
    full = cluster_layer(x, split)
    assert full.scores["ward"] is not None and full.ward is not None
    monkeypatch.setitem(PARAMS["ward"], "max_points", 20)
    limited = cluster_layer(x, split)
    assert limited.scores["ward"] is None and limited.ward is None
    assert limited.scores["ami"] == full.scores["ami"] == pytest.approx(1.0)
    assert limited.kmeans.tolist() == full.kmeans.tolist()
    assert cluster_layer(x, split, with_ward=False).scores["ward"] is None


def test_a_unit_is_handed_rows_in_memory_and_a_view_of_a_file(tmp_path):
    """Pickling a view of an in-memory matrix would ship the whole matrix to a worker, so such a unit gets its
    own rows; a view of a file travels as the view, and the worker reads only its rows."""
    x = np.random.RandomState(0).randn(30, 4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    index = np.asarray([4, 9, 2])
    in_memory = portable(Matrix(x).rows(index))
    assert isinstance(in_memory, np.ndarray) and np.array_equal(in_memory, x[index])
    on_disk = portable(Matrix(tmp_path / "x.npy").rows(index))
    assert isinstance(on_disk, Rows) and not on_disk.matrix.in_memory
    assert np.array_equal(np.asarray(on_disk), x[index])
