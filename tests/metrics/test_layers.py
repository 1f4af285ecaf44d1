"""Layer geometry (subclassbench.metrics.layers): numerical and effective rank, the tunnel rule of Harun et
al., duplicate layers counted once, Pearson and ID/OOD alignment."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.metrics.layers import alignment, effective_rank, numerical_rank, pearson, tunnel_summary


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
