"""One superclass of one layer: the unit of clusterability work, free of torch so worker processes start light.

:mod:`subclassbench.scoring.clusterability` cuts a layer into these units (k-means, Ward and their scores on the
scored split; reconstruction's train-split k-means and its naming) and assembles the per-layer scores; a
:class:`~subclassbench.core.workerpool.WorkerPool` runs them inline or in parallel over (layer, superclass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from subclassbench.features.matrices import Rows
from subclassbench.metrics.clustering import kmeans_faiss, kmeans_fit, l2_normalize, nearest_centroid, ward_cuts
from subclassbench.metrics.partition import purity, scores_and_matches


@dataclass(frozen=True)
class KMeansParams:
    n_init: int
    max_iter: int
    seed: int


@dataclass
class SuperclassClusters:
    pred: np.ndarray  # k-means cluster of each of the superclass's rows
    scores: dict[str, float]
    matched: int
    ward: dict[str, Any] | None  # cuts and overclustering scores (each factor → …), base scores and matched count


def portable(view: Rows) -> Rows | np.ndarray:
    """What a unit is handed: a file-backed view as it is (the worker reads its rows), an in-memory one as
    its rows (pickling the view would copy the whole matrix to the worker)."""
    return np.asarray(view) if view.matrix.in_memory else view


def unit_rows(x: Rows | np.ndarray) -> np.ndarray:
    """L2-normalised rows: normalising is per row, so this equals normalising the whole matrix and taking the
    rows, without holding the whole matrix."""
    return l2_normalize(np.asarray(x))


def cluster_superclass(
    x: Rows | np.ndarray, truth: np.ndarray, k: int, params: KMeansParams, ward_factors: tuple[int, ...] | None
) -> SuperclassClusters:
    """k-means (k = the superclass's subclasses) on one superclass's rows, scored against ``truth``; with
    ``ward_factors``, Ward cut at k × each factor from one tree (Nguyen & Kornblith 2023's overclustering)."""
    x = unit_rows(x)
    pred = kmeans_faiss(x, k, n_init=params.n_init, max_iter=params.max_iter, seed=params.seed)
    scores, matched = scores_and_matches(truth, pred)
    ward = None
    if ward_factors is not None:
        cuts = ward_cuts(x, [f * k for f in ward_factors])
        by_factor = {f: cuts[min(f * k, len(x))] for f in ward_factors}
        base, base_matched = scores_and_matches(truth, cuts[k])
        over = {  # keyed by factor: the layer's summary looks each factor up by name, not by position
            f: {"ami": float(adjusted_mutual_info_score(truth, by_factor[f])), "purity": purity(truth, by_factor[f])}
            for f in ward_factors
        }
        ward = {"cuts": by_factor, "scores": base, "matched": base_matched, "overcluster": over}
    return SuperclassClusters(pred, scores, matched, ward)


def named_centroids(
    train_x: Rows | np.ndarray, train_subclass: np.ndarray, k: int, params: KMeansParams
) -> tuple[np.ndarray, np.ndarray]:
    """Yang et al. (2023)'s naming step for one superclass: k-means on its train rows, each cluster named by
    the Hungarian matching of clusters to subclasses on the train labels. Returns (centroids, the subclass
    each cluster names; -1 for an empty cluster, whose images then count as wrong)."""
    centroids, labels = kmeans_fit(
        unit_rows(train_x), k, n_init=params.n_init, max_iter=params.max_iter, seed=params.seed
    )
    table = contingency_matrix(train_subclass, labels)
    present_truth, present_clusters = np.unique(train_subclass), np.unique(labels)
    r, c = linear_sum_assignment(table, maximize=True)
    name = np.full(k, -1, dtype=np.int64)
    name[present_clusters[c]] = present_truth[r]
    return centroids, name


def name_rows(x: Rows | np.ndarray, centroids: np.ndarray, name: np.ndarray) -> np.ndarray:
    """The subclass named by the nearest centroid of each row."""
    named: np.ndarray = name[nearest_centroid(unit_rows(x), centroids)]
    return named
