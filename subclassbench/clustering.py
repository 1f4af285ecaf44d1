"""Clustering back ends: faiss k-means (primary) and scikit-learn Ward (secondary)."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Unit-length rows; all-zero rows stay zero (dead units carry no direction)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def kmeans_faiss(x: np.ndarray, k: int, *, n_init: int, max_iter: int, seed: int) -> np.ndarray:
    """Lloyd k-means with random-sample init, best of ``n_init`` restarts, on all points.

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
    return labels.ravel().astype(np.int64)


def kmeans_sklearn(x: np.ndarray, k: int, *, n_init: int, max_iter: int, seed: int) -> np.ndarray:
    """scikit-learn's Lloyd k-means at the same settings (benchmark reference)."""
    from sklearn.cluster import KMeans

    km = KMeans(
        n_clusters=k, init="random", n_init=n_init, max_iter=max_iter, tol=0.0, random_state=seed, algorithm="lloyd"
    )
    return km.fit_predict(x).astype(np.int64)


def ward(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x).astype(np.int64)
