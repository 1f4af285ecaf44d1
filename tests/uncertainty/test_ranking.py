"""Tie-aware ranks (subclassbench.uncertainty.ranking): rows a paired bootstrap cannot separate share a rank."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.uncertainty.bootstrap import interval
from subclassbench.uncertainty.ranking import Contender, difference, tie_aware_ranks


def test_ranks_are_shared_by_rows_a_paired_bootstrap_cannot_separate():
    rng = np.random.default_rng(4)
    shared = rng.normal(0, 0.02, 1000)  # image-level noise the rows share (paired)
    a = Contender(0.80, np.r_[0.80, 0.80 + shared + rng.normal(0, 0.004, 1000)], "same")
    b = Contender(0.799, np.r_[0.799, 0.799 + shared + rng.normal(0, 0.004, 1000)], "same")
    c = Contender(0.70, np.r_[0.70, 0.70 + shared + rng.normal(0, 0.004, 1000)], "same")
    assert tie_aware_ranks([a, b, c]) == [1, 1, 3]
    # Unpaired rows (other images) fall back to point values: no shared rank without evidence.
    b_elsewhere = Contender(0.799, b.replicates, "other")
    assert tie_aware_ranks([a, b_elsewhere, c]) == [1, 2, 3]
    # Pairing matters: the same two rows with independent noise of that size would not separate.
    d = Contender(0.78, np.r_[0.78, 0.78 + shared + rng.normal(0, 0.004, 1000)], "same")
    assert tie_aware_ranks([a, d]) == [1, 2]


def test_rows_with_identical_resamples_share_rank_one():
    """A difference of exactly zero in every replicate is no evidence that either row is better: its interval
    is [0, 0], and "better" needs an interval strictly above zero."""
    replicates = np.random.default_rng(3).normal(0.5, 0.02, 200)
    a = Contender(0.5, replicates.copy(), "same images")
    b = Contender(0.5, replicates.copy(), "same images")
    assert tie_aware_ranks([a, b]) == [1, 1]
    # A replicate-by-replicate lead of any size is distinguishable, however small.
    ahead = Contender(0.5 + 1e-6, replicates + 1e-6, "same images")
    assert tie_aware_ranks([a, ahead]) == [2, 1]


def test_a_row_without_a_score_ranks_below_every_scored_row():
    rows = [Contender(None), Contender(0.2), Contender(None)]
    assert tie_aware_ranks(rows) == [2, 1, 2]


def test_unpaired_rows_with_equal_point_values_share_a_rank():
    """Without replicates drawn on the same images only point values compare: equal ones are a tie."""
    rows = [Contender(0.4), Contender(0.4, np.full(50, 0.4), "images a"), Contender(0.3, np.full(50, 0.3), "images b")]
    assert tie_aware_ranks(rows) == [1, 1, 3]


def test_the_difference_of_two_paired_rows_and_its_interval():
    # Replicates are the estimate followed by its bootstrap values; j leads i by 0.02 in its estimate and by
    # 0.01-0.03 in its replicates, drawn on the same images (the same draws of ``base``).
    base = np.random.default_rng(5).normal(0.5, 0.05, 401)
    shift = np.concatenate([[0.02], np.linspace(0.01, 0.03, 400)])
    j, i = Contender(0.52, base + shift, "same"), Contender(0.5, base, "same")
    value, (low, high) = difference(j, i)
    assert value == pytest.approx(0.02)
    assert [low, high] == pytest.approx(interval(shift), abs=1e-9)  # paired: the draws of ``base`` cancel
    assert 0.01 <= low < 0.02 < high <= 0.03
    assert difference(j, Contender(0.5, base, "other images")) is None
    assert difference(j, Contender(0.5)) is None
    assert difference(j, Contender(0.5, None, "same")) is None  # a pairing string without replicates
