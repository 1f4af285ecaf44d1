"""The stratified bootstrap (subclassbench.uncertainty.bootstrap): its arithmetic, seed combination, and the
methods the result schema names."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from subclassbench.metrics.layers import tunnel_summary
from subclassbench.schemas import load_schema
from subclassbench.uncertainty.bootstrap import (
    METHOD,
    PREVIOUS_METHODS,
    ami_from_tables,
    cell_tables,
    cluster_replicates,
    combine_seeds,
    interval,
    mean_replicates,
    nmi_from_tables,
    retained_replicates,
    stratified_counts,
    with_estimate,
)

# --------------------------------------------------------------------------- arithmetic


def test_ami_from_weighted_tables_equals_scikit_learn_on_the_expanded_labels():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        truth, pred = rng.integers(0, int(rng.integers(1, 4)), n), rng.integers(0, int(rng.integers(1, 5)), n)
        counts = rng.integers(0, 3, (3, n))
        tables = cell_tables(counts, truth, pred)
        got = ami_from_tables(tables)
        for b in range(3):
            expected = adjusted_mutual_info_score(np.repeat(truth, counts[b]), np.repeat(pred, counts[b]))
            assert got[b] == pytest.approx(expected, abs=1e-12)


def test_nmi_from_tables_equals_scikit_learn():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        truth, pred = rng.integers(0, int(rng.integers(1, 4)), n), rng.integers(0, int(rng.integers(1, 5)), n)
        got = nmi_from_tables(cell_tables(np.ones((1, n), dtype=np.int64), truth, pred))[0]
        assert got == pytest.approx(normalized_mutual_info_score(truth, pred), abs=1e-12)


def test_ami_replicates_are_centred_on_the_samples_nmi_and_the_estimate_is_untouched():
    """Near chance, resampled AMIs sit above the estimate by the chance correction (NMI − AMI); centred, they
    straddle it, and the interval holds the estimate instead of collapsing beside it."""
    rng = np.random.default_rng(2)
    superclass = np.repeat(np.arange(4), 200)
    subclass = rng.integers(0, 4, 800)
    clusters = np.where(rng.random(800) < 0.2, subclass, rng.integers(0, 4, 800))
    counts = with_estimate(stratified_counts(superclass, 400, 0, "evaluation"))
    got = cluster_replicates(counts, superclass, subclass, clusters)
    amis, offsets = [], []
    for s in range(4):
        rows = superclass == s
        amis.append(adjusted_mutual_info_score(subclass[rows], clusters[rows]))
        offsets.append(normalized_mutual_info_score(subclass[rows], clusters[rows]) - amis[-1])
    assert got.ami[0] == pytest.approx(np.mean(amis), abs=1e-12)  # the estimate, as a result reports it
    raw = np.mean(
        [
            ami_from_tables(
                cell_tables(counts[:, superclass == s], subclass[superclass == s], clusters[superclass == s])
            )
            for s in range(4)
        ],
        axis=0,
    )
    assert got.ami[1:] == pytest.approx(raw[1:] - np.mean(offsets), abs=1e-12)
    assert np.mean(raw[1:] > raw[0]) > 0.95  # uncentred: nearly every replicate above the estimate
    assert 0.3 < np.mean(got.ami[1:] > got.ami[0]) < 0.7
    low, high = interval(got.ami)
    assert low < got.ami[0] < high
    assert high - low > 2 * np.std(got.ami[1:])


def test_counts_keep_every_stratum_size_and_are_seeded_per_sample_set():
    strata = np.repeat([0, 1, 2], [5, 9, 20])
    counts = stratified_counts(strata, 50, seed=0, name="evaluation")
    for s in range(3):
        assert (counts[:, strata == s].sum(axis=1) == (strata == s).sum()).all()
    assert (counts == stratified_counts(strata, 50, seed=0, name="evaluation")).all()
    assert not (counts == stratified_counts(strata, 50, seed=0, name="probe.id")).all()
    assert not (counts == stratified_counts(strata, 50, seed=1, name="evaluation")).all()


def test_first_value_is_the_estimate_and_replicates_are_weighted_means():
    rng = np.random.default_rng(1)
    correct = rng.random(30) < 0.7
    counts = with_estimate(stratified_counts(np.zeros(30, int), 20, 0, "evaluation"))
    values = mean_replicates(counts, correct)
    assert values[0] == pytest.approx(correct.mean())
    assert values[5] == pytest.approx(np.repeat(correct, counts[5]).mean())
    curve = rng.random((30, 4)) < np.array([0.5, 0.9, 0.8, 0.6])
    retained = retained_replicates(mean_replicates(counts, curve), [True] * 4)
    assert retained[0] == pytest.approx(tunnel_summary(list("abcd"), [0] * 4, curve.mean(0).tolist())["ood_retained"])


def test_bias_correction_follows_the_replicates_offset():
    rng = np.random.default_rng(2)
    half = rng.normal(0.0, 1.0, 2000)
    replicates = np.r_[half, -half]  # symmetric about the estimate: z0 = 0, BC is the percentile interval
    centred = interval(np.r_[0.0, replicates])
    assert centred == pytest.approx(np.quantile(replicates, [0.025, 0.975]).tolist(), abs=1e-9)
    shifted = interval(np.r_[0.0, replicates + 0.5])  # replicates biased upward: the interval moves down
    assert shifted[0] < 0.5 + centred[0] and shifted[1] < 0.5 + centred[1]
    assert interval(np.r_[1.0, np.ones(100)]) == [1.0, 1.0]  # no variation, no width


def test_seed_combination_widens_the_interval_by_the_seed_spread():
    rng = np.random.default_rng(3)
    image_noise = rng.normal(0, 0.01, 1000)
    one_seed = np.r_[0.5, 0.5 + image_noise]
    assert (combine_seeds(one_seed[None, :]) == one_seed).all()
    spread = np.stack([np.r_[m, m + image_noise] for m in (0.45, 0.5, 0.55)])  # the same images, other weights
    combined = combine_seeds(spread)
    assert combined[0] == pytest.approx(0.5)
    low, high = interval(combined)
    one_low, one_high = interval(one_seed)
    assert high - low > 2 * (one_high - one_low)  # the seeds spread 0.05 each side; the images only ±0.02


# --------------------------------------------------------------------------- methods


def test_the_schema_names_the_current_and_every_earlier_method():
    schema = load_schema("result")
    assert schema["properties"]["uncertainty"]["properties"]["method"]["enum"] == [METHOD, *PREVIOUS_METHODS]


def test_the_bias_corrected_interval_has_efrons_endpoints_on_skewed_replicates():
    """Efron's (1987) BC interval, computed here with the standard library: the percentiles
    Φ(2·z0 ± z_{0.975}), z0 = Φ⁻¹(share of replicates below the estimate, ties counted half)."""
    from statistics import NormalDist

    replicates = np.random.default_rng(11).exponential(1.0, 999)  # right-skewed: the median lies below the mean
    estimate = float(replicates.mean())
    below = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / replicates.size
    normal = NormalDist()
    z0 = normal.inv_cdf(below)
    assert z0 > 0.2  # skewed enough that the correction moves the endpoints
    z = normal.inv_cdf(0.975)
    expected = [float(np.quantile(replicates, normal.cdf(2 * z0 + sign * z))) for sign in (-1, 1)]
    low, high = interval(np.concatenate([[estimate], replicates]))
    assert low == pytest.approx(expected[0], abs=1e-9) and high == pytest.approx(expected[1], abs=1e-9)
    # Half the correction (or none) gives endpoints this test tells apart.
    half = float(np.quantile(replicates, normal.cdf(z0 - z)))
    plain = float(np.quantile(replicates, 0.025))
    assert abs(low - half) > 1e-3 and abs(low - plain) > 1e-3


def test_the_within_superclass_accuracy_keeps_the_whole_samples_cluster_names_in_every_replicate():
    """Near chance, a matching re-fitted per resample fits the resample's duplicates: every replicate lay above
    the estimate and the BC interval collapsed below it (the untrained breeds-tiny16 row's 0.350 [0.345, 0.345]).
    Named once, each replicate is the share of resampled images whose cluster carries their subclass's name."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(5)
    superclass = np.repeat(np.arange(4), 100)
    subclass = rng.integers(0, 4, 400)
    clusters = rng.integers(0, 4, 400)  # chance: the clusters know nothing
    counts = with_estimate(stratified_counts(superclass, 400, 0, "evaluation"))
    got = cluster_replicates(counts, superclass, subclass, clusters).matched_acc
    right = np.zeros(400, dtype=bool)  # per image: does its cluster carry its subclass's name (named once)?
    for s in range(4):
        rows = np.flatnonzero(superclass == s)
        table = np.zeros((4, 4))
        np.add.at(table, (subclass[rows], clusters[rows]), 1)
        truth, cluster = linear_sum_assignment(table, maximize=True)
        named = dict(zip(cluster.tolist(), truth.tolist(), strict=True))  # cluster → the subclass it is named
        right[rows] = [named.get(c) == t for c, t in zip(clusters[rows], subclass[rows], strict=True)]
    assert got[0] == pytest.approx(right.mean())  # the estimate: Hungarian-matched accuracy, as before
    assert got[1:] == pytest.approx(mean_replicates(counts[1:], right))  # replicates: a plain mean, same names
    low, high = interval(got)
    assert low <= got[0] <= high  # straddles the estimate, near chance too


def test_the_seed_level_draws_are_pinned_and_pair_each_replicate_with_its_image_resample():
    """The two-level bootstrap's seed draws, recomputed here from their documented stream (the seed and the crc32
    of "training-seeds"): a changed salt, an unseeded stream or a replicate read from the wrong column changes
    the intervals of every multi-seed row. Two seeds take the general path; one seed is returned as it is."""
    import zlib

    rng = np.random.default_rng(3)
    values = rng.normal(size=(2, 1 + 50))
    got = combine_seeds(values, seed=7)
    stream = np.random.default_rng([7, zlib.crc32(b"training-seeds")])
    draws = stream.integers(0, 2, size=(50, 2))
    expected = values[draws, np.arange(1, 51)[:, None]].mean(axis=1)
    assert got[0] == pytest.approx(values[:, 0].mean())
    assert np.array_equal(got[1:], expected)
    assert np.array_equal(combine_seeds(values, seed=7), got)  # seeded: the same call, the same replicates
    default = np.random.default_rng([0, zlib.crc32(b"training-seeds")]).integers(0, 2, size=(50, 2))
    assert np.array_equal(combine_seeds(values)[1:], values[default, np.arange(1, 51)[:, None]].mean(axis=1))
