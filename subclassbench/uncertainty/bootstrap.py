"""Stratified, seeded bootstrap over evaluation images: replicates of every headline metric, and their intervals.

The unit of resampling is the image. Each sample set (the evaluation split,
each OOD test set, the subpopulation-shift set) is resampled on its own,
*within strata* — superclasses for the evaluation split, classes for a probe's
test set — so every replicate keeps the set's class sizes, as the protocol's
per-superclass clustering needs. A replicate is a vector of multinomial counts
(how often each image is drawn), which turns every statistic into weighted
sums over images: accuracies are ``counts @ correct / n``, contingency tables
are counts summed per (subclass, cluster) cell. A first row of ones gives the
point estimate by the same code (:func:`with_estimate`); every stored
replicate vector is ``[estimate, replicate 1, …, replicate B]``. Intervals are
bias-corrected percentile intervals of the replicates; AMI replicates are first
centred on the sample's NMI, their value in the resampled population
(:func:`cluster_replicates`).

Clusters are **reused**, not refit: a replicate re-scores the stored
per-image cluster assignments and probe predictions. What this interval
covers is the sampling of evaluation images — the dominant source: refitting
k-means per replicate widened the committed-AMI interval by a few percent of
its width at many times the cost (``benchmarks/bootstrap_refit.py``,
``docs/uncertainty.md``). Training-seed variance is a separate source,
added across a submission's seeds (:func:`combine_seeds`).

The counts depend only on the strata, the seed, the set's name and ``B``, so
two results on the same images draw the *same* replicates: the difference of
their replicate vectors is a paired bootstrap of the difference of their
scores, which is how the leaderboard decides ties.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TypedDict

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information

from subclassbench.core.hashing import sha256_text

# How replicates become intervals. The first method let AMI replicates sit where resampling puts them: near chance
# that is several standard deviations above the estimate, and its intervals collapsed to a point beside the estimate
# (coverage 0-15% at ``calibration.NEAR_CHANCE``). Results record the method; intervals from different methods are
# never paired (``leaderboard._pairing``), and ``subclassbench intervals`` recomputes an older result's. The second
# method re-named the clusters in every replicate (a fresh Hungarian matching per resample): near chance each
# replicate's matching fits its own duplicates, nearly every replicate lay above the estimate, and the
# bias-corrected interval of the within-superclass accuracy collapsed below it (the untrained breeds-tiny16 row:
# 0.350 [0.345, 0.345]). The clusters' names are part of the fit, which replicates reuse, never refit.
METHOD = "bias-corrected percentile; AMI replicates centred on the sample NMI; clusters named once, on the whole sample"
PREVIOUS_METHODS = ("bias-corrected percentile; AMI replicates centred on the sample NMI", "bias-corrected percentile")


class BootstrapSettings(TypedDict):
    method: str
    resamples: int
    seed: int
    level: float
    unit: str
    clusters: str
    seeds: str


# The bootstrap's settings. Not part of the protocol fingerprint: they change no point estimate, only the
# intervals around it, and every result records the settings it used (``uncertainty``).
BOOTSTRAP: BootstrapSettings = {
    "method": METHOD,
    "resamples": 1000,
    "seed": 0,
    "level": 0.95,
    "unit": "evaluation image, resampled within its superclass (evaluation split) or class (probe test sets)",
    "clusters": "reused: stored per-image assignments and predictions are re-scored, never refit",
    "seeds": "across training seeds: each replicate also resamples the seeds (two-level bootstrap)",
}


def stratified_counts(strata: np.ndarray, resamples: int, seed: int, name: str) -> np.ndarray:
    """(resamples, n) draw counts: each stratum's rows drawn with replacement, as many as it holds.

    Seeded by ``(seed, crc32(name))``, so every sample set has its own stream
    and results on the same images get the same counts.
    """
    strata = np.asarray(strata)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    counts = np.zeros((resamples, len(strata)), dtype=np.uint16 if len(strata) < 65_535 else np.uint32)
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        counts[:, rows] = rng.multinomial(len(rows), np.full(len(rows), 1.0 / len(rows)), size=resamples)
    return counts


def plan_digest(strata: np.ndarray, resamples: int, seed: int, name: str) -> str:
    """What the counts of one sample set are drawn from: equal digests mean paired replicates."""
    strata = np.ascontiguousarray(np.asarray(strata, dtype=np.int64))
    return sha256_text(f"{name}|{resamples}|{seed}|{sha256_text(strata.tobytes().hex())}")[:16]


def mean_replicates(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Replicates of a per-image mean (an accuracy): ``values`` (n,) → (B,), or (n, L) → (B, L)."""
    replicates: np.ndarray = (counts.astype(np.float64) @ np.asarray(values, dtype=np.float64)) / counts.shape[1]
    return replicates


# --------------------------------------------------------------------------- AMI from contingency tables


def cell_tables(counts: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(B, r, c) weighted contingency tables of one superclass's rows (truth and pred renumbered 0…)."""
    t = np.unique(truth, return_inverse=True)[1]
    p = np.unique(pred, return_inverse=True)[1]
    r, c = int(t.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1
    cell = t * c + p
    order = np.argsort(cell, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cell[order]) != 0])
    sums = np.add.reduceat(counts[:, order].astype(np.int64), starts, axis=1) if len(order) else None
    tables = np.zeros((counts.shape[0], r * c), dtype=np.int64)
    if sums is not None:
        tables[:, cell[order][starts]] = sums
    return tables.reshape(-1, r, c)


@lru_cache(maxsize=200_000)
def _emi(rows: tuple[int, ...], cols: tuple[int, ...]) -> float:
    """Expected mutual information (Vinh et al. 2010) of tables with these marginals: scikit-learn's own
    routine, which reads only the table's marginals, memoised because bootstrap marginals repeat."""
    n = sum(rows)
    if len(rows) <= 1 or len(cols) <= 1:  # one class or one cluster: no information to expect
        return 0.0
    table = np.zeros((len(rows), len(cols)), dtype=np.int64)
    # Any table with these marginals gives the same EMI; a north-west-corner fill builds one.
    r, c = list(rows), list(cols)
    i = j = 0
    while i < len(r) and j < len(c):
        take = min(r[i], c[j])
        table[i, j] += take
        r[i] -= take
        c[j] -= take
        i += r[i] == 0
        j += c[j] == 0
    return float(expected_mutual_information(table, n))


@dataclass(frozen=True)
class _Information:
    """Mutual information and marginal entropies (nats) of each of a stack of contingency tables."""

    mi: np.ndarray
    h_true: np.ndarray
    h_pred: np.ndarray
    row_sums: np.ndarray
    col_sums: np.ndarray

    @property
    def degenerate(self) -> np.ndarray:
        """Tables with one class or one cluster: scikit-learn's limit cases (both read 0, or 1 when both are one)."""
        degenerate: np.ndarray = ((self.row_sums > 0).sum(axis=1) <= 1) | ((self.col_sums > 0).sum(axis=1) <= 1)
        return degenerate

    @property
    def single(self) -> np.ndarray:
        """Tables with one class and one cluster (or no images): perfect agreement by convention."""
        classes, clusters = (self.row_sums > 0).sum(axis=1), (self.col_sums > 0).sum(axis=1)
        single: np.ndarray = (classes == clusters) & (classes <= 1)
        return single


def _information(tables: np.ndarray) -> _Information:
    tables = np.asarray(tables, dtype=np.float64)
    n = tables.sum(axis=(1, 2))
    a, b = tables.sum(axis=2), tables.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        outer = a[:, :, None] * b[:, None, :]
        # Each cell's term divided by n before summing, as scikit-learn's per-table formula does: the same
        # floating-point result to the last bit.
        share = tables / n[:, None, None]
        terms = np.where(tables > 0, share * (np.log(tables) - np.log(outer) + np.log(n)[:, None, None]), 0.0)
        mi = np.maximum(terms.sum(axis=(1, 2)), 0.0)
        h_true = -np.where(a > 0, a / n[:, None] * np.log(a / n[:, None]), 0.0).sum(axis=1)
        h_pred = -np.where(b > 0, b / n[:, None] * np.log(b / n[:, None]), 0.0).sum(axis=1)
    return _Information(mi, h_true, h_pred, a, b)


def _clamp(values: np.ndarray) -> np.ndarray:
    """Away from zero by at least machine epsilon, keeping the sign (scikit-learn's guard against 0/0)."""
    eps = np.finfo(np.float64).eps
    clamped: np.ndarray = np.where(values < 0, np.minimum(values, -eps), np.maximum(values, eps))
    return clamped


def ami_from_tables(tables: np.ndarray) -> np.ndarray:
    """Adjusted mutual information (arithmetic normalisation, scikit-learn's definition) of each table.

    Mutual information and entropies are computed for all tables at once; the
    expected mutual information per table, memoised on its marginals.
    """
    info = _information(tables)
    emi = np.array(
        [
            _emi(tuple(int(v) for v in row if v), tuple(int(v) for v in col if v))
            for row, col in zip(info.row_sums, info.col_sums, strict=True)
        ]
    )
    # The numerator is clamped like the denominator: a perfect match at its expectation reads 1, not 0/0.
    out = _clamp(info.mi - emi) / _clamp((info.h_true + info.h_pred) / 2 - emi)
    out = np.where(info.degenerate, 0.0, out)
    return np.where(info.single, 1.0, out)


def nmi_from_tables(tables: np.ndarray) -> np.ndarray:
    """Normalised mutual information (arithmetic mean of the entropies, scikit-learn's default) of each table:
    the value AMI tends to as the sample grows, since the expected mutual information of n images vanishes."""
    info = _information(tables)
    out = info.mi / np.maximum((info.h_true + info.h_pred) / 2, np.finfo(np.float64).eps)
    out = np.where(info.degenerate, 0.0, out)
    return np.where(info.single, 1.0, out)


def matched_from_tables(tables: np.ndarray) -> np.ndarray:
    """Hungarian-matched count of each table, with the clusters named once: by the best one-to-one matching of
    the first table (the whole sample, :func:`with_estimate`'s row 0), kept for every replicate. A matching
    re-fitted per replicate would fit each resample's duplicates and lift every replicate above the estimate."""
    if not len(tables):
        return np.empty(0)
    r, c = linear_sum_assignment(tables[0], maximize=True)
    out: np.ndarray = tables[:, r, c].sum(axis=1).astype(np.float64)
    return out


@dataclass(frozen=True)
class ClusterReplicates:
    """Replicates of the mean-over-superclasses AMI and of the matched (within-superclass) accuracy."""

    ami: np.ndarray
    matched_acc: np.ndarray
    raw_ami: np.ndarray  # the replicates' own AMI, uncentred: what a choice made on a resample would read


def cluster_replicates(
    counts: np.ndarray,
    superclass: np.ndarray,
    subclass: np.ndarray,
    clusters: np.ndarray,
    centre_ami: bool = True,
) -> ClusterReplicates:
    """AMI (unweighted mean over superclasses, as the point estimate) and matched accuracy, per replicate.

    ``counts`` is :func:`with_estimate`'s: row 0 draws every image once (the
    estimate), rows 1… are the replicates. Each superclass's AMI replicates are
    **centred on the sample's NMI**: replicate b becomes ``AMI_b − (NMI − AMI)``
    of the whole sample. Why: a resample's population is the sample itself, and
    the AMI of ever larger resamples tends to that population's NMI, not to the
    AMI (the expected-information correction vanishes with n). Left uncentred,
    replicates sit above the estimate by that correction, (NMI − AMI); near
    chance this is several standard deviations (4 subclasses of 50 images in each
    superclass: +0.015 against a spread of 0.007), and the bias-corrected interval
    collapsed to a point that excluded the estimate. Centred, the deviations
    ``AMI_b − NMI`` are the bootstrap's picture of ``AMI − population value``,
    and the intervals cover at their nominal rate near chance and as before
    elsewhere (``calibration.py``, docs/uncertainty.md). ``centre_ami=False``
    gives the earlier method's replicates, for the calibration's comparison.
    """
    amis, raw, matched = [], [], np.zeros(counts.shape[0])
    for s in np.unique(superclass):
        rows = np.flatnonzero(superclass == s)
        tables = cell_tables(counts[:, rows], subclass[rows], clusters[rows])
        ami = ami_from_tables(tables)
        raw.append(ami.copy())
        if centre_ami:
            ami[1:] -= nmi_from_tables(tables[:1])[0] - ami[0]
        amis.append(ami)
        matched += matched_from_tables(tables)
    return ClusterReplicates(
        ami=np.mean(amis, axis=0), matched_acc=matched / counts.shape[1], raw_ami=np.mean(raw, axis=0)
    )


# --------------------------------------------------------------------------- % retained


def retained_replicates(curves: np.ndarray, distinct: list[bool]) -> np.ndarray:
    """Harun et al.'s % retained (see ``metrics.tunnel_summary``) of each replicate's (B, L) accuracy curve."""
    acc = np.asarray(curves, dtype=np.float64)[:, [i for i, d in enumerate(distinct) if d]]
    best = np.argmax(acc, axis=1)
    best_acc, last_acc = acc[np.arange(len(acc)), best], acc[:, -1]
    tunnel = (best < acc.shape[1] - 1) & (best_acc > last_acc)
    return np.where(tunnel, 100.0 * last_acc / np.where(best_acc > 0, best_acc, 1.0), 100.0)


# --------------------------------------------------------------------------- intervals


def with_estimate(counts: np.ndarray) -> np.ndarray:
    """Counts with a first row of ones (every image once): statistics of that row are the point estimates,
    so one computation gives the estimate (element 0) and the replicates (elements 1…)."""
    return np.vstack([np.ones((1, counts.shape[1]), dtype=counts.dtype), counts])


def interval(values: np.ndarray, level: float = BOOTSTRAP["level"]) -> list[float]:
    """The bias-corrected percentile interval (BC; Efron 1987) ``[low, high]`` from ``values`` = the estimate
    followed by its bootstrap replicates, rounded far below any shown digit.

    The percentiles are shifted by how far the replicates' median sits from
    the estimate (z0), which corrects a statistic whose replicates are biased
    relative to its estimate: the plain percentile interval inherited that
    bias and covered the AMI's population value in ~89% of draws
    (``calibration.py``). For a plain mean z0 ≈ 0 and BC equals the percentile
    interval. BC corrects a bias of a fraction of the spread; the AMI's larger,
    known offset near chance is removed before (:func:`cluster_replicates`).
    """
    from scipy.stats import norm

    values = np.asarray(values, dtype=np.float64)
    estimate, replicates = values[0], values[1:]
    below: float = (np.count_nonzero(replicates < estimate) + 0.5 * np.count_nonzero(replicates == estimate)) / len(
        replicates
    )
    below = min(max(below, 0.5 / len(replicates)), 1 - 0.5 / len(replicates))
    z0 = norm.ppf(below)
    tail = norm.ppf((1.0 - level) / 2.0)
    low, high = np.quantile(replicates, norm.cdf([2 * z0 + tail, 2 * z0 - tail]))
    return [round(float(low), 10), round(float(high), 10)]


def combine_seeds(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """Two-level bootstrap across training seeds: (S, 1 + B) per-seed values (estimate, then image replicates,
    paired across seeds) → (1 + B,) for the seed mean; each replicate also draws S seeds with replacement, so
    its interval holds both sources of variance."""
    values = np.asarray(values, dtype=np.float64)
    n_seeds, width = values.shape
    if n_seeds == 1:
        single: np.ndarray = values[0]
        return single
    rng = np.random.default_rng([seed, zlib.crc32(b"training-seeds")])
    draws = rng.integers(0, n_seeds, size=(width - 1, n_seeds))
    replicates = values[draws, np.arange(1, width)[:, None]].mean(axis=1)
    return np.concatenate([[values[:, 0].mean()], replicates])
