"""Representation-comparison metrics: numpy arrays in, floats or arrays out.

* :func:`linear_cka` — linear centred kernel alignment (Kornblith, Norouzi, Lee
  & Hinton, "Similarity of Neural Network Representations Revisited", ICML 2019).
* :func:`generalized_rand_index` — the Rand index for soft (fuzzy) partitions
  (Hüllermeier, Rifqi, Henzgen & Senge, "Comparing fuzzy partitions: a
  generalization of the Rand index and related measures", IEEE TFS 2012).
* :func:`concept_pair_alignment` — per-concept-pair decomposition of that
  disagreement plus a Hungarian matching of concepts (after Vielhaben et al.,
  NeurIPS 2025).
* :func:`agreement` — of the samples some network gets right, the share that
  every network gets right (Pliushch et al., ECCV 2022), with its
  accuracy-implied bounds and independence baseline, the share of all samples
  every network gets right (:func:`all_right_share`) and the per-sample score
  :func:`sample_agreement`.
* :func:`soft_assignments` — a fixed-seed Gaussian-mixture soft clustering that
  turns pooled features into concept memberships for the two functions above.

Nothing here builds an n × n matrix, so n = 20,000 samples is routine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.special import log_softmax

# Slack on "rows sum to ≤ 1" and "entries ≥ 0": float32 softmax outputs drift by ~1e-7.
_ROW_TOL = 1e-6
_PCA_MAX_DIMS = 64


# --------------------------------------------------------------------------- CKA


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al., ICML 2019) between two representations of the same n samples.

    With column-centred X (n × p) and Y (n × q),
    ``CKA = ‖Yᵀ X‖_F² / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F)``, which equals the Gram-matrix
    form HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)) with K = XXᵀ, L = YYᵀ but
    costs O(n·(p + q)²) time and O((p + q)²) memory instead of O(n²).
    Computed in float64. Returns 0.0 when either side is constant across
    samples (zero norm after centring), where CKA is otherwise 0 / 0.
    """
    # Own float64 copies, centred in place: one n × (p + q) copy at most.
    x = np.array(X, dtype=np.float64)
    y = np.array(Y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"linear_cka needs 2-D arrays (samples × features), got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs the same samples on both sides, got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] == 0:
        raise ValueError("linear_cka needs at least one sample")
    x -= x.mean(axis=0)
    y -= y.mean(axis=0)
    norm_x = np.linalg.norm(x.T @ x)
    norm_y = np.linalg.norm(y.T @ y)
    if norm_x == 0.0 or norm_y == 0.0:
        return 0.0
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (norm_x * norm_y))


# --------------------------------------------------------------------------- generalized Rand index


def _check_memberships(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies of two soft assignment matrices, after validating them."""
    out = []
    for name, m in (("A", A), ("B", B)):
        arr = np.asarray(m, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise ValueError(f"{name} must be a 2-D (samples × concepts) array with ≥ 1 concept, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite memberships")
        if arr.size and arr.min() < -_ROW_TOL:
            raise ValueError(f"{name} has negative memberships (min {arr.min():.3g}); rows must be nonnegative")
        sums = arr.sum(axis=1)
        if sums.size and sums.max() > 1.0 + _ROW_TOL:
            raise ValueError(f"{name} has rows summing to {sums.max():.6g} > 1; memberships must sum to ≤ 1")
        out.append(np.ascontiguousarray(arr))
    a, b = out
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"A and B must describe the same samples, got {a.shape[0]} and {b.shape[0]} rows")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to compare pairs, got {a.shape[0]}")
    return a, b


def _one_hot_labels(m: np.ndarray) -> np.ndarray | None:
    """Column index of each row's single 1 if ``m`` is exactly one-hot, else None."""
    if not np.all((m == 0.0) | (m == 1.0)) or not np.all(m.sum(axis=1) == 1.0):
        return None
    labels: np.ndarray = m.argmax(axis=1)
    return labels


def _rand_index_from_labels(labels_a: np.ndarray, labels_b: np.ndarray, c_a: int, c_b: int) -> float:
    """Ordinary Rand index from the contingency table, in O(n + c_A·c_B) with exact integer pair counts."""
    n: int = labels_a.shape[0]
    table = np.bincount(labels_a * c_b + labels_b, minlength=c_a * c_b).reshape(c_a, c_b)

    def pairs(counts: np.ndarray) -> int:
        counts = counts.astype(np.int64)
        return int((counts * (counts - 1) // 2).sum())

    together_both = pairs(table)
    together_a = pairs(table.sum(axis=1))
    together_b = pairs(table.sum(axis=0))
    # A pair disagrees when exactly one partition puts it together.
    disagreeing = together_a + together_b - 2 * together_both
    return 1.0 - disagreeing / (n * (n - 1) // 2)


def _gri_blockwise(a: np.ndarray, b: np.ndarray, block_size: int) -> float:
    """GRI by summing |E_A − E_B| over i < j in row blocks; peak extra memory ≈ 2 · block_size · n floats."""
    if block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    n: int = a.shape[0]
    total = 0.0
    for start in range(0, n - 1, block_size):
        stop = min(start + block_size, n)
        # L1 distances from this block to itself and every later row; earlier rows were paired already.
        dist = cdist(a[start:stop], a[start:], metric="cityblock")
        dist -= cdist(b[start:stop], b[start:], metric="cityblock")
        np.abs(dist, out=dist)
        width = stop - start
        # Inside the diagonal block keep only j > i; the later columns are all j > i.
        total += float(np.triu(dist[:, :width], k=1).sum()) + float(dist[:, width:].sum())
    # |E_A − E_B| = ½ · |‖A_i − A_j‖₁ − ‖B_i − B_j‖₁|, averaged over n(n−1)/2 pairs.
    return 1.0 - total / (n * (n - 1))


def generalized_rand_index(A: np.ndarray, B: np.ndarray, block_size: int = 256) -> float:
    """Generalized (fuzzy) Rand index of Hüllermeier, Rifqi, Henzgen & Senge (IEEE TFS 2012).

    A (n × c_A) and B (n × c_B) hold nonnegative memberships whose rows sum to
    ≤ 1 (+1e-6). The pair equivalence is ``E_A(i, j) = 1 − ½‖A_i − A_j‖₁`` and
    ``GRI = 1 − 2/(n(n−1)) · Σ_{i<j} |E_A(i, j) − E_B(i, j)|``, in [0, 1].
    For one-hot rows it is the ordinary Rand index, which is then computed
    exactly from the contingency table; otherwise the pair sum runs in row
    blocks of ``block_size`` (time O(n²·(c_A + c_B)), extra memory about
    2 · block_size · n float64). Raises ValueError on invalid memberships,
    differing n, or n < 2.
    """
    a, b = _check_memberships(A, B)
    labels_a, labels_b = _one_hot_labels(a), _one_hot_labels(b)
    if labels_a is not None and labels_b is not None:
        return _rand_index_from_labels(labels_a, labels_b, a.shape[1], b.shape[1])
    return _gri_blockwise(a, b, block_size)


# --------------------------------------------------------------------------- concept-pair alignment


@dataclass(frozen=True, eq=False)
class ConceptAlignment:
    """Concept-pair distances between two soft partitions and their optimal one-to-one matching."""

    distance: np.ndarray  # D, c_A × c_B
    matching: list[tuple[int, int]]  # (concept of A, concept of B), minimising the summed D
    matched_distance: np.ndarray  # D at the matched pairs, in matching order
    unmatched_a: list[int]  # concepts of A left over when c_A > c_B
    unmatched_b: list[int]  # concepts of B left over when c_B > c_A


def _pair_abs_sum(z: np.ndarray) -> np.ndarray:
    """Σ_{i<j} |z_i − z_j| for every column of z (n × m), exactly, by sorting: O(n log n) per column."""
    n = z.shape[0]
    # After sorting, the k-th smallest value is added k times and subtracted n − 1 − k times.
    weights = 2.0 * np.arange(n, dtype=np.float64) - (n - 1)
    sums: np.ndarray = weights @ np.sort(z, axis=0)
    return sums


def concept_pair_alignment(A: np.ndarray, B: np.ndarray) -> ConceptAlignment:
    """Decompose the disagreement of two soft partitions into concept pairs (after Vielhaben et al., NeurIPS 2025).

    ``D[a, b] = 2/(n(n−1)) · Σ_{i<j} ½ · | |A_ia − A_ja| − |B_ib − B_jb| |`` (c_A × c_B),
    then a Hungarian matching (``scipy.optimize.linear_sum_assignment``) of
    concepts minimising the summed D; with c_A ≠ c_B the min(c_A, c_B) pairs
    are matched and the rest are reported unmatched.

    D needs no pairwise work: with p = Δx, q = Δy, | |p| − |q| | = |p + q| + |p − q| − |p| − |q|
    (as max(|p|, |q|) = ½(|p + q| + |p − q|)), and each term is a one-column
    pair sum Σ_{i<j} |z_i − z_j| computed exactly by sorting, so D costs
    O(c_A · c_B · n log n) time and O(n · c_B) memory.

    Relation to :func:`generalized_rand_index` (checked in the tests):
    E_A − E_B = ½ Σ_a |ΔA_a| − ½ Σ_b |ΔB_b|, so by the triangle inequality
    ``1 − GRI ≤ Σ_k D[k, π(k)]`` for every bijection π when c_A = c_B — in
    particular ``1 − GRI ≤ matched_distance.sum()``. With c_A ≠ c_B, pad the
    smaller side with all-zero concept columns (which leaves GRI unchanged)
    and the same bound holds. With one concept on each side it is an equality.
    """
    a, b = _check_memberships(A, B)
    n = a.shape[0]
    c_a, c_b = a.shape[1], b.shape[1]
    single_a = _pair_abs_sum(a)
    single_b = _pair_abs_sum(b)
    total = np.empty((c_a, c_b), dtype=np.float64)
    for k in range(c_a):
        column = a[:, k : k + 1]
        total[k] = _pair_abs_sum(column + b) + _pair_abs_sum(column - b) - single_a[k] - single_b
    # Rounding can leave −1e-16 where the exact value is 0; D is a mean of absolute values.
    distance = np.maximum(total / (n * (n - 1)), 0.0)
    rows, cols = linear_sum_assignment(distance)
    distance.setflags(write=False)
    matched = distance[rows, cols].copy()
    matched.setflags(write=False)
    return ConceptAlignment(
        distance=distance,
        matching=[(int(r), int(c)) for r, c in zip(rows, cols, strict=True)],
        matched_distance=matched,
        unmatched_a=sorted(set(range(c_a)) - {int(r) for r in rows}),
        unmatched_b=sorted(set(range(c_b)) - {int(c) for c in cols}),
    )


# --------------------------------------------------------------------------- agreement


def _check_correct(correct: np.ndarray) -> np.ndarray:
    """A boolean networks × epochs × samples copy of ``correct`` after validating it."""
    arr = np.asarray(correct)
    if arr.ndim != 3:
        raise ValueError(f"correct must be 3-D (networks × epochs × samples), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("correct must hold at least one network")
    if arr.shape[2] == 0:
        raise ValueError("correct must hold at least one sample")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"correct must be boolean or 0/1, got dtype {arr.dtype}")
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError("correct must contain only 0/1 (or boolean) values")
        arr = arr.astype(np.bool_)
    return arr


def sample_agreement(correct: np.ndarray) -> np.ndarray:
    """Per-sample agreement score: the fraction of networks that classify a sample correctly.

    ``correct`` is as in :func:`agreement`. Returns float64, epochs × samples,
    with ``s_e(x) = (1/N) Σ_n c_{n,e}(x)``: 1 when every network is right, 0
    when none is (the per-example true-positive agreement of Hacohen, Choshen &
    Weinshall, ICML 2020). A sample that all networks get wrong scores 0, not
    1: agreeing on a mistake is not counted as agreement (the networks need
    not even predict the same wrong class). :func:`all_right_share` is the share
    of samples whose score is exactly 1.
    """
    scores: np.ndarray = _check_correct(correct).mean(axis=0, dtype=np.float64)
    return scores


def agreement(correct: np.ndarray) -> np.ndarray:
    """Per-epoch agreement of several networks, as Pliushch et al. (ECCV 2022) compute it.

    ``correct`` is boolean (or 0/1), shaped networks × epochs × samples, with
    c_{n,e}(x) = 1 when network n classifies sample x correctly after epoch e.
    ``Agr(e) = Σ_x Π_n c_{n,e}(x) / Σ_x max_n c_{n,e}(x)``: of the samples that at
    least one network gets right, the share that every network gets right (the
    intersection over the union of the networks' correct sets). A sample no
    network gets right is in neither count, and an epoch where no network is
    right on any sample has agreement 0, as in the authors' code
    (ccc-frankfurt/intrinsic_ordering_nn_training, ``calc_agreement``). With a
    single network it is 1 whenever that network gets anything right.
    Returns a float64 array of length epochs.

    It lies between :func:`agreement_lower_bound` and
    :func:`agreement_upper_bound`. Raises ValueError on a wrong shape or
    non-0/1 values.
    """
    arr = _check_correct(correct)
    all_right = arr.all(axis=0).sum(axis=-1)
    any_right = arr.any(axis=0).sum(axis=-1)
    shares: np.ndarray = all_right / np.maximum(any_right, 1)  # 0 / 1 where nobody is right anywhere
    return shares


def all_right_share(correct: np.ndarray) -> np.ndarray:
    """Per epoch, the share of *all* samples that every network gets right: ``(1/|X|) Σ_x Π_n c_{n,e}(x)``.

    Unlike :func:`agreement` the denominator is every sample, so this share is
    never above the weakest network's accuracy and with a single network it is
    that network's accuracy. It is :func:`agreement` times the share of samples
    some network gets right. Returns float64, length epochs.
    """
    arr = _check_correct(correct)
    shares: np.ndarray = arr.all(axis=0).sum(axis=-1) / arr.shape[2]
    return shares


def agreement_lower_bound(correct: np.ndarray) -> np.ndarray:
    """The least agreement the networks' accuracies allow: ``1 − min(Σ_n err_n(e), 1)`` per epoch.

    err_n(e) is network n's error rate after epoch e. A sample leaves the
    all-right set when at least one network misses it, and by the union bound
    at most a share Σ_n err_n of the samples is missed by some network, so
    :func:`all_right_share` is never below this bound, and :func:`agreement`
    (the same count over a union of at most all samples) is not either. For
    two or more networks both reach it: when Σ_n err_n ≤ 1 with mistakes on
    disjoint samples (then every sample is right for some network), and above
    that with mistakes that leave no sample right for all (both are then 0). How far
    agreement lies above it is what the networks share beyond what their
    accuracies force; Pliushch et al. (ECCV 2022) draw this bound. Computed
    from integer counts, so ``agreement ≥ bound`` holds exactly in floating
    point too. Returns float64, length epochs.
    """
    arr = _check_correct(correct)
    n = arr.shape[2]
    wrong = (~arr).sum(axis=(0, 2))  # Σ_n (mistakes of network n) per epoch, an integer count
    bound: np.ndarray = np.maximum(n - wrong, 0) / n
    return bound


def agreement_upper_bound(correct: np.ndarray) -> np.ndarray:
    """The most agreement the networks' accuracies allow: ``min_n acc_n(e) / max_n acc_n(e)`` per epoch (0 if all 0).

    The all-right set is no larger than the weakest network's correct set and
    the union no smaller than the strongest one's; nested correct sets reach
    the bound. Returns float64, length epochs.
    """
    right = _check_correct(correct).sum(axis=2)  # networks × epochs, integer counts
    bound: np.ndarray = right.min(axis=0) / np.maximum(right.max(axis=0), 1)
    return bound


def agreement_if_independent(correct: np.ndarray) -> np.ndarray:
    """The agreement networks with these accuracies would have if their mistakes were independent.

    Per epoch ``Π_n acc_n / (1 − Π_n (1 − acc_n))``: the expected all-right
    share over the expected some-right share (a ratio of expectations, not
    the expected ratio) when each network misses each sample independently at
    its own error rate (0 when that denominator is 0). It never exceeds
    :func:`agreement_upper_bound`. Agreement above it is shared beyond chance.
    Returns float64, length epochs.
    """
    arr = _check_correct(correct)
    accuracy = arr.mean(axis=2, dtype=np.float64)  # networks × epochs
    both = np.prod(accuracy, axis=0)
    some = 1.0 - np.prod(1.0 - accuracy, axis=0)
    ratio = np.divide(both, some, out=np.zeros_like(both), where=some > 0)
    # The ratio never exceeds the upper bound in exact arithmetic; in floating point one network at accuracy
    # 0.1 gives 1.0000000000000002. Clipped, so the baseline always lies within the bounds it is drawn between.
    baseline: np.ndarray = np.minimum(ratio, agreement_upper_bound(arr))
    return baseline


# --------------------------------------------------------------------------- soft clustering


def soft_assignments(features: np.ndarray, k: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """Soft concept memberships (n × k, rows sum to 1) from pooled features (n × d).

    Features are standardised per dimension, reduced by PCA (``random_state=seed``)
    to at most 64 dimensions when d > 64 — which keeps n = 20,000, d = 2,048
    to ~15–20 s on 2 cores and the diagonal-covariance mixture well conditioned — and
    fit with ``GaussianMixture(n_components=k, covariance_type="diag",
    random_state=seed)``. Memberships are the mixture posteriors tempered as
    softmax(log(w_k · N(x | μ_k, Σ_k)) / temperature): temperature 1 gives
    ``predict_proba``, smaller is harder, larger is softer. Deterministic for
    a fixed seed on a fixed machine and library versions.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x = np.array(features, dtype=np.float64)  # a private copy, so scaling can run in place
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (samples × dims), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be between 1 and the number of samples ({x.shape[0]}), got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # Standardise in place (as StandardScaler: population std, constant columns left at 0) to cap memory.
    x -= x.mean(axis=0)
    std = np.sqrt(np.einsum("ij,ij->j", x, x) / x.shape[0])
    x /= np.where(std > 0, std, 1.0)
    if x.shape[1] > _PCA_MAX_DIMS:
        x = PCA(n_components=min(_PCA_MAX_DIMS, x.shape[0]), random_state=seed).fit_transform(x)
    gmm = GaussianMixture(n_components=k, covariance_type="diag", random_state=seed).fit(x)
    # Weighted log-likelihood per component from the fitted parameters, so tempering never sees log(0).
    # Expanded square (x − μ)²/σ² avoids an n × k × d temporary.
    precision = 1.0 / gmm.covariances_
    means = gmm.means_
    sq = (x**2) @ precision.T - 2.0 * x @ (means * precision).T + (means**2 * precision).sum(axis=1)
    var = gmm.covariances_
    log_prob = -0.5 * (sq + np.log(2.0 * np.pi * var).sum(axis=1)) + np.log(gmm.weights_)
    memberships: np.ndarray = np.exp(log_softmax(log_prob / temperature, axis=1))
    return memberships
