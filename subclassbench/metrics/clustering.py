"""Clustering back ends: faiss k-means (primary) and scikit-learn Ward (secondary)."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Unit-length rows; all-zero rows stay zero (dead units carry no direction)."""
    # Row norms a block at a time: ``norm`` squares its whole input first, a second copy of the matrix.
    if len(x) == 0:
        return x.astype(np.float32)
    step = max(1, (16 << 20) // max(1, x.shape[1] * x.itemsize))
    norms = np.concatenate([np.linalg.norm(x[a : a + step], axis=1, keepdims=True) for a in range(0, len(x), step)])
    unit: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)  # one copy of the matrix, not two
    return unit


def kmeans_faiss(x: np.ndarray, k: int, *, n_init: int, max_iter: int, seed: int) -> np.ndarray:
    """Cluster labels of :func:`kmeans_fit` (see there)."""
    return kmeans_fit(x, k, n_init=n_init, max_iter=max_iter, seed=seed)[1]


def kmeans_fit(x: np.ndarray, k: int, *, n_init: int, max_iter: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd k-means with random-sample init, best of ``n_init`` restarts, on all points: (centroids, labels).

    faiss subsamples to 256·k points by default; ``max_points_per_centroid`` is
    raised so every point is used, as the protocol requires.

    Runs on one OpenMP thread: superclass-sized problems are too small to gain
    from more, and when other work shares the cores OpenMP's spinning threads
    made them up to 300× slower (labels are identical across thread counts).
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=max_iter,
        nredo=n_init,
        seed=seed,
        verbose=False,
        max_points_per_centroid=len(x) + 1,
        min_points_per_centroid=1,
    )
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km.train(x)
        _, labels = km.index.search(x, 1)
    finally:
        faiss.omp_set_num_threads(threads)
    return np.asarray(km.centroids, dtype=np.float32).copy(), labels.ravel().astype(np.int64)


def nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean; the first of ties) for every row."""
    d = (x * x).sum(1, keepdims=True) - 2.0 * x @ centroids.T + (centroids * centroids).sum(1)[None, :]
    nearest: np.ndarray = np.argmin(d, axis=1).astype(np.int64)
    return nearest


def kmeans_sklearn(x: np.ndarray, k: int, *, n_init: int, max_iter: int, seed: int) -> np.ndarray:
    """scikit-learn's Lloyd k-means at the same settings (benchmark reference)."""
    from sklearn.cluster import KMeans

    km = KMeans(
        n_clusters=k, init="random", n_init=n_init, max_iter=max_iter, tol=0.0, random_state=seed, algorithm="lloyd"
    )
    labels: np.ndarray = km.fit_predict(x).astype(np.int64)
    return labels


def ward_cuts(x: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """Ward partitions into each of ``ks`` clusters from one tree (Nguyen & Kornblith overcluster up to 5×).

    Builds scikit-learn's Ward tree once (the same merges as
    ``AgglomerativeClustering(linkage="ward")``) and cuts it by undoing the
    last merges, so five factors cost one O(n²) fit, not five. ``k`` is capped
    at the number of points.
    """
    from sklearn.cluster import AgglomerativeClustering

    n = len(x)
    if n < 2:
        return {k: np.zeros(n, dtype=np.int64) for k in ks}
    model = AgglomerativeClustering(n_clusters=1, linkage="ward", compute_full_tree=True).fit(x)
    children = model.children_  # merge i creates node n + i from two existing nodes
    out: dict[int, np.ndarray] = {}
    for k in ks:
        k = min(k, n)
        merges = children[: n - k]  # the first n - k merges leave k clusters
        nodes = n + (n - k)
        has_parent = np.zeros(nodes, dtype=bool)
        has_parent[merges.ravel()] = True
        label = np.full(nodes, -1, dtype=np.int64)
        roots = np.flatnonzero(~has_parent)
        label[roots] = np.arange(len(roots))
        for i in range(len(merges) - 1, -1, -1):  # top down: children inherit their parent's cluster
            label[merges[i]] = label[n + i]
        out[k] = np.unique(label[:n], return_inverse=True)[1].astype(np.int64)
    return out
