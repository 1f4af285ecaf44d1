"""Layer geometry (subclassbench.metrics.layers): numerical and effective rank, the tunnel rule of Harun et
al., duplicate layers counted once, Pearson and ID/OOD alignment."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.metrics.layers import (
    alignment,
    effective_rank,
    numerical_rank,
    pearson,
    singular_values,
    tunnel_summary,
)


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_numerical_rank_of_known_rank_matrices(rank):
    rng = np.random.RandomState(rank)
    x = rng.randn(200, rank) @ rng.randn(rank, 32)
    assert numerical_rank(x) == rank
    assert numerical_rank(x + 1e-9 * rng.randn(200, 32)) == rank  # tiny noise stays below 1e-3·σ_max


def test_effective_rank_bounds_and_exact_cases():
    q, _ = np.linalg.qr(np.random.RandomState(0).randn(50, 50))
    assert effective_rank(q[:, :7] * 5.0) == pytest.approx(7.0)  # 7 equal singular values → exactly 7
    x = np.random.RandomState(1).randn(100, 20)
    assert 1.0 <= effective_rank(x) <= numerical_rank(x) == 20
    assert effective_rank(np.outer(np.arange(1, 11), np.ones(5))) == pytest.approx(1.0)
    assert effective_rank(np.zeros((4, 3))) == 0.0 and numerical_rank(np.zeros((4, 3))) == 0


NAMES = ["a", "b", "c", "d"]


def test_tunnel_rule_of_harun_et_al():
    flat_id = [0.9, 0.9, 0.9, 0.9]
    rising = tunnel_summary(NAMES[:3], flat_id[:3], [0.2, 0.5, 0.9])
    assert rising["ood_retained"] == 100.0 and not rising["tunnel"]  # best at the penultimate layer: none
    dip = tunnel_summary(NAMES, flat_id, [0.4, 0.8, 0.6, 0.4])
    assert dip["tunnel"] and dip["best_layer"] == "b" and dip["ood_retained"] == pytest.approx(50.0)
    assert tunnel_summary(NAMES, flat_id, [0.5, 0.8, 0.8, 0.4])["best_layer"] == "b"  # ties: the shallowest
    tie = tunnel_summary(NAMES, flat_id, [0.5, 0.8, 0.6, 0.8])  # an earlier layer equal to the last: no tunnel
    assert not tie["tunnel"] and tie["ood_retained"] == 100.0
    assert not tunnel_summary(NAMES[:2], flat_id[:2], [0.0, 0.0])["tunnel"]  # nothing to lose


def test_duplicate_layers_count_once():
    # 'c' equals 'd' (a pooled last block that is the embedding): without it the best layer is 'd' itself.
    curve = [0.5, 0.6, 0.9, 0.9]
    with_duplicate = tunnel_summary(NAMES, [0.1, 0.2, 0.3, 0.4], curve)
    deduplicated = tunnel_summary(NAMES, [0.1, 0.2, 0.3, 0.4], curve, [True, True, False, True])
    assert not with_duplicate["tunnel"] and not deduplicated["tunnel"]
    # Pearson over 3 distinct points, not 4 (the duplicated point would count twice).
    assert deduplicated["pearson_id_ood"] == pytest.approx(pearson([0.1, 0.2, 0.4], [0.5, 0.6, 0.9]))
    assert deduplicated["pearson_id_ood"] != pytest.approx(with_duplicate["pearson_id_ood"])


def test_pearson_and_alignment():
    assert pearson([0.1, 0.2, 0.3], [0.2, 0.4, 0.6]) == pytest.approx(1.0)
    assert pearson([0.1, 0.2, 0.3], [0.6, 0.4, 0.2]) == pytest.approx(-1.0)
    assert pearson([0.5, 0.5], [0.1, 0.2]) is None and pearson([0.5], [0.1]) is None
    assert alignment(0.2, 0.9, 0.2, 0.1) == 0.0  # ID at chance
    assert alignment(1.0, 1.0, 0.25, 0.5) == pytest.approx(0.75 * 0.5)
    assert alignment(0.1, 0.9, 0.2, 0.2) < 0  # below chance on one side


# --------------------------------------------------------------------------- edge cases (mutation testing)


def test_singular_values_are_float64_whatever_the_input():
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    s = singular_values(x)
    assert s.dtype == np.float64 and np.allclose(s, np.linalg.svd(x.astype(np.float64), compute_uv=False))


def test_numerical_rank_at_its_boundaries():
    assert numerical_rank(np.zeros((0, 3))) == 0  # no rows: no singular value
    assert numerical_rank(np.array([[2.0]])) == 1  # a single singular value
    assert numerical_rank(np.eye(4)) == 4  # the largest singular value is exactly 1
    assert numerical_rank(np.zeros((5, 3))) == 0
    # A singular value exactly at the relative tolerance does not count; the tolerance scales with the largest.
    assert numerical_rank(np.eye(2), s=np.array([1.0, 1e-3])) == 1
    assert numerical_rank(np.eye(2), s=np.array([10.0, 0.005])) == 1
    assert numerical_rank(np.eye(2), s=np.array([10.0, 0.011])) == 2
    # Precomputed singular values are used as given (the matrix is not decomposed again).
    assert numerical_rank(np.eye(3), s=np.array([1.0, 0.0, 0.0])) == 1


def test_effective_rank_of_given_singular_values():
    assert effective_rank(np.eye(3), s=np.array([0.5, 0.5])) == pytest.approx(2.0)  # values below 1 count
    assert effective_rank(np.eye(3), s=np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_rank(np.zeros((3, 3))) == 0.0


def test_tunnel_summary_names_its_numbers_and_survives_a_zero_curve():
    summary = tunnel_summary(["a", "b", "c"], [0.5, 0.6, 0.7], [0.2, 0.4, 0.3])
    assert summary["best_layer"] == "b" and summary["tunnel"] is True
    assert summary["best_acc"] == pytest.approx(0.4) and summary["penultimate_acc"] == pytest.approx(0.3)
    assert summary["ood_retained"] == pytest.approx(75.0)
    flat = tunnel_summary(["a", "b"], [0.5, 0.6], [0.0, 0.0])  # chance everywhere: no tunnel, nothing lost
    assert flat["tunnel"] is False and flat["ood_retained"] == 100.0


def test_pearson_on_the_shortest_and_unit_range_curves():
    assert pearson([0.0, 1.0], [1.0, 3.0]) == pytest.approx(1.0)  # two points define a correlation
    assert pearson([0.0, 1.0, 2.0], [0.0, 0.5, 1.0]) == pytest.approx(1.0)  # a range of exactly 1
    assert pearson([1.0], [2.0]) is None and pearson([1.0, 1.0], [0.0, 1.0]) is None
