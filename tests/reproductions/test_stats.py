"""Statistics across seeds (subclassbench.reproductions.stats): seed summaries, Cliff's delta, the exact
Wilcoxon test, the verdict rule, learned-at epochs, image statistics, Spearman."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    cliffs_delta,
    direction_verdict,
    image_statistics,
    learned_at,
    paired,
    seed_summary,
    spearman,
)


def test_seed_summary_is_mean_sample_std_and_a_t_interval():
    s = seed_summary([0.1, 0.2, 0.6])
    assert s.mean == pytest.approx(0.3)
    assert s.std == pytest.approx(np.std([0.1, 0.2, 0.6], ddof=1))
    low, high = scipy_stats.t.interval(0.95, 2, loc=0.3, scale=s.std / np.sqrt(3))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))
    one = seed_summary([0.4])
    assert (one.std, one.low, one.high) == (0.0, 0.4, 0.4)
    assert "1 seed" in one.text()


def test_cliffs_delta_counts_pairs():
    assert cliffs_delta([3, 4], [1, 2]) == 1.0
    assert cliffs_delta([1, 2], [3, 4]) == -1.0
    assert cliffs_delta([1, 2], [1, 2]) == 0.0
    a, b = [1.0, 5.0, 3.0], [2.0, 2.0, 4.0]
    brute = np.mean([np.sign(x - y) for x in a for y in b])
    assert cliffs_delta(a, b) == pytest.approx(brute)


def test_paired_uses_the_exact_wilcoxon_test():
    a, b = [0.5, 0.6, 0.7, 0.8, 0.9], [0.4, 0.45, 0.52, 0.71, 0.6]
    p = paired(a, b)
    assert p.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(a, b, method="exact").pvalue)
    assert p.difference.mean == pytest.approx(np.mean(np.subtract(a, b)))
    assert paired([1, 2], [1, 2]).wilcoxon_p is None  # no differences: no test
    with pytest.raises(ValueError, match="one value per seed"):
        paired([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    ("diffs", "sign", "verdict"),
    [
        ([0.1, 0.12, 0.11], +1, REPRODUCED),
        ([-0.1, -0.12, -0.11], -1, REPRODUCED),
        ([0.1, 0.2, -0.01], +1, PARTLY),  # a seed goes the other way
        ([0.01, 0.3, 0.02], +1, PARTLY),  # all positive, but the interval of the mean holds 0
        ([-0.1, -0.12, -0.11], +1, NOT_REPRODUCED),
        ([0.0, 0.0, 0.0], +1, NOT_REPRODUCED),
    ],
)
def test_the_verdict_rule(diffs, sign, verdict):
    assert direction_verdict(seed_summary(diffs), sign)[0] == verdict


def test_learned_at_is_the_first_epoch_from_which_a_sample_stays_right():
    log = np.array(
        [  # epochs × samples
            [1, 0, 1, 0, 1],
            [1, 1, 0, 0, 1],
            [1, 1, 1, 0, 0],
        ],
        dtype=bool,
    )
    assert learned_at(log).tolist() == [1, 2, 3, 4, 4]  # 4 = never (wrong at the end)


def test_image_statistics_invariances():
    rng = np.random.default_rng(0)
    flat = np.full((1, 1, 8, 8), 0.5)
    noise = rng.random((1, 1, 8, 8))
    blocks = ((np.indices((8, 8)) // 2).sum(axis=0) % 2).astype(float)[None, None]  # 2×2-pixel checkerboard
    step = np.zeros((1, 1, 8, 8))
    step[..., 4:] = 1.0  # one vertical edge
    images = np.concatenate([flat, noise, blocks, step])
    s = image_statistics(images)
    assert s["entropy"][0] == 0 and s["edges"][0] == 0 and s["contrast"][0] == 0
    assert s["edges"][2] > s["edges"][3] > 0  # the checkerboard is edges everywhere, the step in one column
    assert s["entropy"][1] > s["entropy"][2] == s["entropy"][3] == 1.0  # noise: many grey levels; two: 1 bit
    again = image_statistics(images * 7.0 + 3.0)  # an affine change of the whole set's range changes nothing
    for name in s:
        np.testing.assert_allclose(again[name], s[name], atol=1e-12)
    rgb = image_statistics(np.repeat(images, 3, axis=1))  # grey images in three channels: the same
    for name in s:
        np.testing.assert_allclose(rgb[name], s[name], atol=1e-12)


def test_spearman_is_none_for_a_constant_side():
    assert spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) is None
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
