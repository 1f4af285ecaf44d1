"""Representation-comparison metrics against brute-force references and scikit-learn, and the agreement of
training runs (Pliushch et al., ECCV 2022; agreement v3): definition and bounds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import rand_score

from subclassbench.metrics.similarity import (
    _gri_blockwise,
    agreement,
    agreement_if_independent,
    agreement_lower_bound,
    agreement_upper_bound,
    all_right_share,
    concept_pair_alignment,
    generalized_rand_index,
    linear_cka,
    sample_agreement,
    soft_assignments,
)

# --------------------------------------------------------------------------- helpers


def _one_hot(labels: np.ndarray, c: int) -> np.ndarray:
    return np.eye(c)[labels]


def _soft(rng: np.random.Generator, n: int, c: int, sub_stochastic: bool = False) -> np.ndarray:
    m = rng.dirichlet(np.full(c, 0.5), size=n)
    if sub_stochastic:  # rows summing to < 1 are allowed too
        m *= rng.uniform(0.3, 1.0, size=(n, 1))
    return m


def _brute_gri(a: np.ndarray, b: np.ndarray) -> float:
    n = len(a)
    diffs = []
    for i in range(n):
        for j in range(i + 1, n):
            e_a = 1 - 0.5 * np.abs(a[i] - a[j]).sum()
            e_b = 1 - 0.5 * np.abs(b[i] - b[j]).sum()
            diffs.append(abs(e_a - e_b))
    return 1 - float(np.mean(diffs))


def _brute_concept_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(a), k=1)
    da = np.abs(a[i] - a[j])  # pairs × c_A
    db = np.abs(b[i] - b[j])  # pairs × c_B
    return (0.5 * np.abs(da[:, :, None] - db[:, None, :])).mean(axis=0)


def _brute_cka(x: np.ndarray, y: np.ndarray) -> float:
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(gram_1: np.ndarray, gram_2: np.ndarray) -> float:
        return float(np.trace(gram_1 @ h @ gram_2 @ h))

    gram_x, gram_y = x @ x.T, y @ y.T
    return hsic(gram_x, gram_y) / np.sqrt(hsic(gram_x, gram_x) * hsic(gram_y, gram_y))


# --------------------------------------------------------------------------- generalized Rand index


@pytest.mark.parametrize("seed", range(5))
def test_gri_equals_rand_score_on_hard_labels_both_paths(seed):
    rng = np.random.default_rng(seed)
    n, c_a, c_b = 57, int(rng.integers(2, 6)), int(rng.integers(2, 7))
    la, lb = rng.integers(0, c_a, n), rng.integers(0, c_b, n)
    a, b = _one_hot(la, c_a), _one_hot(lb, c_b)
    expected = rand_score(la, lb)
    assert generalized_rand_index(a, b) == pytest.approx(expected, abs=1e-12)
    assert _gri_blockwise(a, b, block_size=7) == pytest.approx(expected, abs=1e-12)


def test_gri_fast_path_handles_empty_concept_columns():
    # Concept 2 of A is never used: the contingency table has an empty row.
    la, lb = np.array([0, 0, 1, 1, 3, 3]), np.array([0, 1, 1, 0, 0, 1])
    a, b = _one_hot(la, 4), _one_hot(lb, 2)
    assert generalized_rand_index(a, b) == pytest.approx(rand_score(la, lb))
    assert _gri_blockwise(a, b, 4) == pytest.approx(rand_score(la, lb))


@pytest.mark.parametrize("sub_stochastic", [False, True])
def test_gri_matches_brute_force_on_soft_inputs(sub_stochastic):
    rng = np.random.default_rng(1)
    a, b = _soft(rng, 23, 3, sub_stochastic), _soft(rng, 23, 4, sub_stochastic)
    assert generalized_rand_index(a, b) == pytest.approx(_brute_gri(a, b), abs=1e-12)


def test_gri_mixed_hard_and_soft_uses_pairwise_path():
    rng = np.random.default_rng(2)
    la = rng.integers(0, 3, 19)
    a, b = _one_hot(la, 3), _soft(rng, 19, 3)
    assert generalized_rand_index(a, b) == pytest.approx(_brute_gri(a, b), abs=1e-12)


@pytest.mark.parametrize("block_size", [1, 2, 5, 16, 39, 40, 1000])
def test_gri_blockwise_does_not_depend_on_block_size(block_size):
    rng = np.random.default_rng(3)
    a, b = _soft(rng, 40, 3), _soft(rng, 40, 5)
    reference = _gri_blockwise(a, b, block_size=40)
    assert _gri_blockwise(a, b, block_size=block_size) == pytest.approx(reference, abs=1e-12)
    assert generalized_rand_index(a, b, block_size=block_size) == pytest.approx(reference, abs=1e-12)


def test_gri_range_symmetry_identity():
    rng = np.random.default_rng(4)
    for _ in range(5):
        a, b = _soft(rng, 30, 4), _soft(rng, 30, 2)
        value = generalized_rand_index(a, b)
        assert 0.0 <= value <= 1.0
        assert generalized_rand_index(b, a) == pytest.approx(value, abs=1e-12)
        assert generalized_rand_index(a, a) == pytest.approx(1.0, abs=1e-12)


def test_gri_invariant_to_permuting_concepts():
    rng = np.random.default_rng(5)
    a, b = _soft(rng, 31, 4), _soft(rng, 31, 3)
    value = generalized_rand_index(a, b)
    assert generalized_rand_index(a[:, rng.permutation(4)], b[:, rng.permutation(3)]) == pytest.approx(value)


def test_gri_hard_partitions_with_relabelled_clusters_are_identical():
    la = np.random.default_rng(6).integers(0, 4, 50)
    assert generalized_rand_index(_one_hot(la, 4), _one_hot((la + 1) % 4, 4)) == 1.0


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.array([[0.7, 0.6], [0.5, 0.5]]), np.array([[1.0], [1.0]]), "sum"),
        (np.array([[1.2, -0.2], [0.5, 0.5]]), np.array([[1.0], [1.0]]), "negative"),
        (np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[1.0], [1.0], [1.0]]), "same samples"),
        (np.array([[1.0]]), np.array([[1.0]]), "at least 2"),
        (np.array([0.5, 0.5]), np.array([[1.0], [1.0]]), "2-D"),
        (np.array([[np.nan], [1.0]]), np.array([[1.0], [1.0]]), "NaN"),
    ],
)
def test_gri_rejects_invalid_memberships(a, b, match):
    with pytest.raises(ValueError, match=match):
        generalized_rand_index(a, b)
    with pytest.raises(ValueError, match=match):
        concept_pair_alignment(a, b)


def test_gri_accepts_tiny_float_overshoot():
    a = np.array([[0.5, 0.5 + 1e-7], [1.0, 0.0]])
    assert 0.0 <= generalized_rand_index(a, a) <= 1.0


# --------------------------------------------------------------------------- concept-pair alignment


@pytest.mark.parametrize(("c_a", "c_b"), [(3, 3), (2, 4), (5, 2)])
def test_concept_distance_matches_brute_force(c_a, c_b):
    rng = np.random.default_rng(7)
    a, b = _soft(rng, 27, c_a, True), _soft(rng, 27, c_b)
    result = concept_pair_alignment(a, b)
    assert result.distance.shape == (c_a, c_b)
    np.testing.assert_allclose(result.distance, _brute_concept_distance(a, b), atol=1e-13)


@pytest.mark.parametrize(("c_a", "c_b"), [(3, 3), (2, 4), (5, 2)])
def test_concept_matching_is_a_valid_optimal_assignment(c_a, c_b):
    import itertools

    rng = np.random.default_rng(8)
    a, b = _soft(rng, 25, c_a), _soft(rng, 25, c_b)
    result = concept_pair_alignment(a, b)
    rows = [r for r, _ in result.matching]
    cols = [c for _, c in result.matching]
    assert len(result.matching) == min(c_a, c_b)
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert sorted(rows + result.unmatched_a) == list(range(c_a))
    assert sorted(cols + result.unmatched_b) == list(range(c_b))
    np.testing.assert_array_equal(result.matched_distance, result.distance[rows, cols])
    # Brute-force the best injective matching of the smaller side.
    d = result.distance if c_a <= c_b else result.distance.T
    best = min(
        sum(d[i, p[i]] for i in range(d.shape[0])) for p in itertools.permutations(range(d.shape[1]), d.shape[0])
    )
    assert result.matched_distance.sum() == pytest.approx(best)


def test_concept_alignment_identical_and_permuted_inputs():
    rng = np.random.default_rng(9)
    a = _soft(rng, 30, 4)
    same = concept_pair_alignment(a, a)
    np.testing.assert_allclose(same.matched_distance, 0.0, atol=1e-15)
    assert same.matching == [(k, k) for k in range(4)]
    perm = np.array([2, 0, 3, 1])
    permuted = concept_pair_alignment(a, a[:, perm])
    np.testing.assert_allclose(permuted.matched_distance, 0.0, atol=1e-15)
    assert sorted((int(perm[b]), a_) for a_, b in permuted.matching) == [(k, k) for k in range(4)]


def test_concept_alignment_result_is_read_only():
    result = concept_pair_alignment(np.eye(3), np.eye(3))
    with pytest.raises(ValueError):
        result.distance[0, 0] = 1.0
    with pytest.raises(AttributeError):
        result.matching = []  # type: ignore[misc]


@pytest.mark.parametrize(("c_a", "c_b"), [(3, 3), (4, 2), (2, 5)])
def test_one_minus_gri_is_bounded_by_matched_concept_distance(c_a, c_b):
    rng = np.random.default_rng(10)
    for _ in range(5):
        a, b = _soft(rng, 35, c_a), _soft(rng, 35, c_b)
        # Zero concept columns leave GRI unchanged and make both sides c-wide.
        c = max(c_a, c_b)
        a_pad = np.hstack([a, np.zeros((35, c - c_a))])
        b_pad = np.hstack([b, np.zeros((35, c - c_b))])
        gri = generalized_rand_index(a, b)
        assert generalized_rand_index(a_pad, b_pad) == pytest.approx(gri, abs=1e-12)
        result = concept_pair_alignment(a_pad, b_pad)
        assert 1.0 - gri <= result.matched_distance.sum() + 1e-12
        # The bound holds for every bijection, e.g. the identity.
        assert 1.0 - gri <= np.trace(result.distance) + 1e-12


def test_one_minus_gri_equals_concept_distance_for_single_concepts():
    rng = np.random.default_rng(11)
    x, y = rng.uniform(size=(40, 1)), rng.uniform(size=(40, 1))
    result = concept_pair_alignment(x, y)
    assert result.distance[0, 0] == pytest.approx(1.0 - generalized_rand_index(x, y), abs=1e-13)


def test_one_minus_gri_is_not_the_matched_sum_in_general():
    # Guards the documentation: the relation is only an inequality.
    rng = np.random.default_rng(12)
    a, b = _soft(rng, 35, 3), _soft(rng, 35, 3)
    gri = generalized_rand_index(a, b)
    assert 1.0 - gri < concept_pair_alignment(a, b).matched_distance.sum() - 1e-3


# --------------------------------------------------------------------------- CKA


def test_cka_identity_symmetry_range_and_brute_force():
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(40, 7)), rng.normal(size=(40, 5))
    y[:, 0] += 2 * x[:, 0]
    value = linear_cka(x, y)
    assert 0.0 <= value <= 1.0
    assert linear_cka(y, x) == pytest.approx(value, abs=1e-12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert value == pytest.approx(_brute_cka(x, y), abs=1e-10)


def test_cka_invariant_to_orthogonal_transform_scaling_and_shift():
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 4))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    value = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(value, abs=1e-12)
    assert linear_cka(3.7 * x + 5.0, 0.01 * y) == pytest.approx(value, abs=1e-12)


def test_cka_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(15)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    y[:, 0] += x[:, 0]
    assert linear_cka(x * np.array([10.0, 1.0, 1.0]), y) != pytest.approx(linear_cka(x, y), abs=1e-3)


def test_cka_constant_side_is_zero():
    rng = np.random.default_rng(16)
    assert linear_cka(np.ones((10, 3)), rng.normal(size=(10, 2))) == 0.0
    assert linear_cka(rng.normal(size=(10, 2)), np.full((10, 1), 4.0)) == 0.0


def test_cka_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(np.zeros(5), np.zeros((5, 2)))


# --------------------------------------------------------------------------- agreement


def test_agreement_all_and_none_right():
    np.testing.assert_array_equal(agreement(np.ones((3, 2, 10), dtype=bool)), [1.0, 1.0])
    # Nobody right anywhere: 0, as in Pliushch et al.'s code (v1 gave 1.0 here).
    np.testing.assert_array_equal(agreement(np.zeros((3, 2, 10), dtype=bool)), [0.0, 0.0])


def test_a_single_network_agrees_with_itself_and_its_all_right_share_is_its_accuracy():
    rng = np.random.default_rng(17)
    correct = rng.random((1, 4, 20)) < 0.5
    np.testing.assert_array_equal(agreement(correct), correct[0].any(axis=1).astype(float))
    np.testing.assert_array_equal(all_right_share(correct), correct[0].mean(axis=1))


def test_agreement_hand_computed_two_networks():
    correct = np.array(
        [
            [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
            [[1, 0, 1, 0, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0]],
        ]
    )
    # Epoch 0: both right on x0, some right on x0–x2 → 1/3. Epoch 1: x0 of x0–x3 → 1/4. Epoch 2: nobody right → 0.
    for dtype in (np.int64, bool, np.float32):
        np.testing.assert_allclose(agreement(correct.astype(dtype)), [1 / 3, 1 / 4, 0.0])
    # Of all five samples: 1/5, 1/5, 0.
    np.testing.assert_allclose(all_right_share(correct), [1 / 5, 1 / 5, 0.0])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((2, 5), dtype=bool), "3-D"),
        (np.ones((2, 3, 4, 5), dtype=bool), "3-D"),
        (np.full((2, 3, 4), 0.5), "0/1"),
        (np.full((2, 3, 4), 2), "0/1"),
        (np.full((2, 3, 4), "1"), "dtype"),
        (np.ones((0, 3, 4), dtype=bool), "at least one network"),
    ],
)
def test_agreement_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        agreement(bad)


# --------------------------------------------------------------------------- soft assignments


def _blobs(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(3, d))
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d))


@pytest.mark.parametrize("d", [5, 80])  # below and above the PCA cut-off
def test_soft_assignments_rows_sum_to_one_and_are_deterministic(d):
    x = _blobs(18, 150, d)
    first = soft_assignments(x, 3, seed=4)
    assert first.shape == (150, 3)
    assert np.all(first >= 0)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(soft_assignments(x, 3, seed=4), first)


def test_soft_assignments_temperature_one_is_predict_proba():
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    x = _blobs(19, 120, 4) + np.random.default_rng(0).normal(scale=3.0, size=(120, 4))
    expected = GaussianMixture(3, covariance_type="diag", random_state=2).fit(StandardScaler().fit_transform(x))
    got = soft_assignments(x, 3, seed=2)
    np.testing.assert_allclose(got, expected.predict_proba(StandardScaler().fit_transform(x)), atol=1e-9)


def test_soft_assignments_above_64_dimensions_fit_the_mixture_on_64_principal_components():
    """The documented recipe, run here with scikit-learn's own pieces: standardise, PCA to 64 components at the
    seed, a diagonal mixture at the seed, its posteriors (temperature 1)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(2).normal(size=(150, 80))  # no structure: posteriors soft, so dimensions tell
    reduced = PCA(n_components=64, random_state=5).fit_transform(StandardScaler().fit_transform(x))
    expected = GaussianMixture(3, covariance_type="diag", random_state=5).fit(reduced).predict_proba(reduced)
    assert 0.1 < expected.max(axis=1).mean() < 0.99
    np.testing.assert_allclose(soft_assignments(x, 3, seed=5), expected, atol=1e-7)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.full((4, 2), np.nan), "features contain NaN or infinite values"),
        (np.ones((4, 2, 1)), "features must be 2-D (samples × dims), got shape (4, 2, 1)"),
    ],
)
def test_soft_assignments_refuse_bad_features_with_their_whole_message(features, message):
    with pytest.raises(ValueError) as raised:
        soft_assignments(features, 2)
    assert str(raised.value) == message


def test_soft_assignments_temperature_sharpens_and_softens():
    x = _blobs(20, 120, 4) + np.random.default_rng(1).normal(scale=3.0, size=(120, 4))

    def entropy(p: np.ndarray) -> float:
        return float(-(p * np.log(np.clip(p, 1e-300, None))).sum())

    base = soft_assignments(x, 3)
    assert (
        entropy(soft_assignments(x, 3, temperature=0.5))
        < entropy(base)
        < entropy(soft_assignments(x, 3, temperature=3))
    )
    # Tempering keeps each sample's most likely concept.
    np.testing.assert_array_equal(soft_assignments(x, 3, temperature=3).argmax(1), base.argmax(1))


def test_soft_assignments_feed_the_partition_metrics():
    x = _blobs(21, 90, 6)
    p, q = soft_assignments(x, 3, seed=0), soft_assignments(x, 4, seed=1)
    assert 0.0 <= generalized_rand_index(p, q) <= 1.0
    assert concept_pair_alignment(p, q).distance.shape == (3, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k": 0}, "k must"), ({"k": 500}, "k must"), ({"k": 2, "temperature": 0.0}, "temperature")],
)
def test_soft_assignments_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        soft_assignments(_blobs(22, 40, 3), **kwargs)


# --------------------------------------------------------------------------- agreement of training runs


def _authors_agreement(correct: np.ndarray) -> np.ndarray:
    """Pliushch et al.'s computation as their code states it (``calc_agreement``): Σ Π over Σ max, 0/1 → 0."""
    arr = np.asarray(correct, dtype=np.int64)
    intersection = np.prod(arr, axis=0).sum(axis=1)
    union = np.max(arr, axis=0).sum(axis=1)
    return intersection / np.where(union == 0, 1, union)


def test_a_sample_no_network_gets_right_is_left_out():
    # Three networks, one epoch, three samples: x0 right everywhere, x1 right for one network, x2 wrong everywhere.
    correct = np.array([[[1, 1, 0]], [[1, 0, 0]], [[1, 0, 0]]], dtype=bool)
    np.testing.assert_array_equal(sample_agreement(correct), [[1.0, 1 / 3, 0.0]])
    np.testing.assert_array_equal(agreement(correct), [0.5])  # x0 of {x0, x1}; x2 counts in neither
    np.testing.assert_array_equal(all_right_share(correct), [1 / 3])  # x0 of all three
    # Nobody right anywhere: agreement 0 (the authors' code divides by 1 there); everybody right everywhere: 1.
    np.testing.assert_array_equal(agreement(np.zeros((3, 2, 10), dtype=bool)), [0.0, 0.0])
    np.testing.assert_array_equal(agreement(np.ones((3, 2, 10), dtype=bool)), [1.0, 1.0])


def test_the_papers_worked_example():
    # Three models, three images, three epochs with agreement 0, 1/2, 2/3: the values of the worked example in
    # the authors' README (the correctness pattern here is ours).
    correct = np.array(
        [
            [[1, 0, 0], [1, 1, 0], [1, 1, 1]],
            [[0, 1, 0], [1, 1, 0], [1, 1, 0]],
            [[0, 0, 0], [1, 0, 0], [1, 1, 0]],
        ],
        dtype=bool,
    )
    np.testing.assert_allclose(agreement(correct), [0.0, 1 / 2, 2 / 3])


def test_hand_computed_three_networks():
    correct = np.array(
        [
            [[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]],
            [[1, 1, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1]],
            [[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 0]],
        ]
    )
    # Epoch 0: all right on x0, x5; some right on x0–x3, x5 → 2/5; of all six samples 2/6.
    #   errors 2/6 each → lower bound 1 − min(1, 1) = 0; accuracies 4/6 each → upper bound 1.
    # Epoch 1: all right on x0–x3, some right on all six → 4/6; errors 0, 1/6, 1/6 → lower bound 4/6 (disjoint
    #   misses); accuracies 1, 5/6, 5/6 → upper bound 5/6.
    np.testing.assert_allclose(agreement(correct), [2 / 5, 4 / 6])
    np.testing.assert_allclose(all_right_share(correct), [2 / 6, 4 / 6])
    np.testing.assert_allclose(agreement_lower_bound(correct), [0.0, 4 / 6])
    np.testing.assert_allclose(agreement_upper_bound(correct), [1.0, 5 / 6])
    # Independent networks at 2/3 each: (8/27) / (1 − 1/27) = 8/26.
    assert agreement_if_independent(correct)[0] == pytest.approx(8 / 26)
    np.testing.assert_allclose(sample_agreement(correct)[0], [1, 2 / 3, 2 / 3, 2 / 3, 0, 1])
    np.testing.assert_allclose(sample_agreement(correct)[1], [1, 1, 1, 1, 2 / 3, 2 / 3])


def test_single_network():
    correct = np.random.default_rng(3).random((1, 4, 50)) < 0.7
    np.testing.assert_array_equal(agreement(correct), [1.0, 1.0, 1.0, 1.0])  # its correct set against itself
    np.testing.assert_allclose(all_right_share(correct), correct[0].mean(axis=1))
    np.testing.assert_allclose(agreement_lower_bound(correct), correct[0].mean(axis=1))
    np.testing.assert_allclose(agreement_if_independent(correct), [1.0, 1.0, 1.0, 1.0], rtol=0, atol=1e-12)
    # Every accuracy k/200 of one network: a / (1 − (1 − a)) is 1 in exact arithmetic, not always in floating
    # point (0.1 gives 1.0000000000000002); the baseline never passes the upper bound.
    for k in range(1, 201):
        one = (np.arange(200) < k)[None, None, :]
        assert 1.0 - 1e-12 < agreement_if_independent(one)[0] <= 1.0


@pytest.mark.parametrize("seed", range(20))
def test_agreement_matches_the_authors_computation_and_stays_within_its_bounds(seed):
    rng = np.random.default_rng(seed)
    networks, epochs, samples = rng.integers(1, 6), rng.integers(1, 5), rng.integers(1, 200)
    # Accuracies spread from 0 to near 1, so both branches of min(Σ err, 1) and empty unions occur.
    rate = rng.random((networks, epochs, 1)) * rng.integers(0, 2, (1, epochs, 1))
    correct = rng.random((networks, epochs, samples)) < rate
    agr = agreement(correct)
    np.testing.assert_allclose(agr, _authors_agreement(correct), rtol=0, atol=1e-15)
    assert np.all(agr >= agreement_lower_bound(correct))
    assert np.all(agr <= agreement_upper_bound(correct))
    share = all_right_share(correct)
    assert np.all(share <= agr) and np.all(share >= agreement_lower_bound(correct))
    np.testing.assert_allclose(share, agr * correct.any(axis=0).mean(axis=1))
    baseline = agreement_if_independent(correct)
    assert np.all(baseline >= 0) and np.all(baseline <= agreement_upper_bound(correct))


def test_bounds_are_reached():
    # Disjoint mistakes: every sample is right for some network, so agreement = the share = the lower bound.
    correct = np.ones((3, 1, 9), dtype=bool)
    correct[0, 0, 0:2] = correct[1, 0, 2:4] = correct[2, 0, 4:5] = False
    assert agreement(correct)[0] == all_right_share(correct)[0] == agreement_lower_bound(correct)[0]
    assert agreement(correct)[0] == pytest.approx(4 / 9)
    # Nested correct sets: agreement = lowest / highest accuracy.
    nested = np.zeros((3, 1, 10), dtype=bool)
    nested[0, 0, :3], nested[1, 0, :6], nested[2, 0, :8] = True, True, True
    assert agreement(nested)[0] == agreement_upper_bound(nested)[0] == pytest.approx(3 / 8)


def test_independent_networks_agree_as_the_baseline_says():
    rng = np.random.default_rng(0)
    rate = np.array([0.9, 0.6, 0.3])[:, None, None]
    correct = rng.random((3, 1, 200_000)) < rate
    assert agreement(correct)[0] == pytest.approx(agreement_if_independent(correct)[0], abs=0.005)
    # Networks that share their mistakes agree far above it.
    shared = np.broadcast_to(correct[1:2], correct.shape)
    assert agreement(shared)[0] == 1.0 > agreement_if_independent(shared)[0] + 0.3


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones((2, 5), dtype=bool), "3-D"),
        (np.ones((2, 3, 0), dtype=bool), "at least one sample"),
        (np.full((2, 3, 4), 0.5), "0/1"),
    ],
)
def test_bad_correctness_arrays(bad, match):
    for function in (
        agreement,
        all_right_share,
        agreement_lower_bound,
        agreement_upper_bound,
        agreement_if_independent,
        sample_agreement,
    ):
        with pytest.raises(ValueError, match=match):
            function(bad)


def test_linear_cka_reads_integer_and_float32_features_in_float64():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=(40, 6))
    y = rng.integers(-5, 6, size=(40, 3))
    exact = linear_cka(x.astype(np.float64), y.astype(np.float64))
    assert linear_cka(x, y) == exact  # integer maps (a plug-in's output) are not refused or truncated
    assert linear_cka(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(exact, abs=1e-12)


def test_linear_cka_refuses_mismatched_or_empty_inputs_and_names_the_rows():
    with pytest.raises(ValueError, match="same samples on both sides, got 3 and 4 rows"):
        linear_cka(np.ones((3, 2)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="needs at least one sample"):
        linear_cka(np.ones((0, 3)), np.ones((0, 2)))
    assert linear_cka(np.ones((1, 3)), np.ones((1, 2))) == 0.0  # one sample: constant after centring, not an error


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones((2, 5), dtype=bool), "correct must be 3-D (networks × epochs × samples), got shape (2, 5)"),
        (np.ones((0, 3, 4), dtype=bool), "correct must hold at least one network"),
        (np.ones((2, 3, 0), dtype=bool), "correct must hold at least one sample"),
        (np.full((2, 3, 4), "1"), "correct must be boolean or 0/1, got dtype <U1"),
        (np.full((2, 3, 4), 0.5), "correct must contain only 0/1 (or boolean) values"),
    ],
)
def test_a_bad_correctness_array_is_refused_with_its_whole_message(bad, message):
    # The message is what a user reads; matched whole, so a changed or garbled one fails here.
    with pytest.raises(ValueError) as raised:
        agreement(bad)
    assert str(raised.value) == message


def test_one_sample_and_one_sample_right_are_scored():
    # A single sample is enough (the refusal is for none).
    one = np.array([[[True]], [[True]]])
    np.testing.assert_array_equal(agreement(one), [1.0])
    np.testing.assert_array_equal(sample_agreement(one), [[1.0]])
    # Exactly one sample right for some network: the union has one element, so agreement is 0 or 1.
    correct = np.zeros((2, 2, 5), dtype=bool)
    correct[:, 0, 3] = True  # epoch 0: both networks right on x3 only
    correct[0, 1, 2] = True  # epoch 1: only network 0 right, on x2 only
    np.testing.assert_array_equal(agreement(correct), [1.0, 0.0])
    np.testing.assert_array_equal(all_right_share(correct), [0.2, 0.0])
    np.testing.assert_array_equal(agreement_upper_bound(correct), [1.0, 0.0])
    np.testing.assert_allclose(agreement_if_independent(correct), [0.2 * 0.2 / (1 - 0.8 * 0.8), 0.0])
    # Nobody right at all: no expected union to divide by, and the baseline is 0 exactly, never unset memory.
    assert agreement_if_independent(np.zeros((3, 2, 5), dtype=bool)).tolist() == [0.0, 0.0]
