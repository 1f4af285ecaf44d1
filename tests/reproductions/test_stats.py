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
    above_all_controls,
    above_control,
    accuracy_gate,
    cliffs_delta,
    direction_verdict,
    holm,
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


# --------------------------------------------------------------------------- rules a null cannot pass


def test_holm_matches_the_step_down_procedure_by_hand():
    # Holm (1979): sort ascending, multiply the i-th smallest by (m − i), keep the running maximum, cap at 1.
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    # Never below the raw p, and order-preserving in the raw p.
    rng = np.random.default_rng(0)
    raw = rng.uniform(size=20)
    adjusted = np.asarray(holm(raw))
    assert np.all(adjusted >= raw) and np.all(np.diff(adjusted[np.argsort(raw)]) >= 0)


def test_above_control_needs_the_interval_of_the_paired_difference_above_zero():
    clear = above_control([0.60, 0.62, 0.61], [0.50, 0.51, 0.49], "untrained")
    assert clear.above and clear.difference.mean == pytest.approx(0.11) and clear.p_one_sided < 0.01
    # A mean above the control with a seed below it: the t-interval holds zero.
    noisy = above_control([0.60, 0.50, 0.70], [0.55, 0.55, 0.55], "untrained")
    assert noisy.difference.mean > 0 and not noisy.above
    # The control itself never passes: every difference is zero.
    same = above_control([0.6, 0.5, 0.7], [0.6, 0.5, 0.7], "untrained")
    assert not same.above and same.p_one_sided == 1.0
    # A control without seeds (raw pixels) is one value, repeated.
    pixels = above_control([0.60, 0.62, 0.61], [0.3], "raw pixels")
    assert pixels.difference.values == pytest.approx((0.30, 0.32, 0.31)) and pixels.above
    with pytest.raises(ValueError):
        above_control([0.6, 0.5], [0.1, 0.2, 0.3], "untrained")


def test_above_all_controls_applies_holm_over_the_comparisons():
    # Each comparison alone passes (interval above zero, p ≈ 0.02); Holm over three of them does not (p ≈ 0.06).
    borderline = [above_control([0.064, 0.10, 0.136], [0.0, 0.0, 0.0], k) for k in ("a", "b", "c")]
    assert all(c.above for c in borderline) and all(0.0167 < c.p_one_sided < 0.025 for c in borderline)
    assert above_all_controls(borderline[:1]) and not above_all_controls(borderline)
    assert not above_all_controls([])  # nothing to beat is not evidence


def test_accuracy_gate_is_half_way_from_chance_to_perfect():
    assert accuracy_gate([0.62, 0.59], 0.2) == (True, pytest.approx(0.6))
    assert accuracy_gate([0.207], 0.2)[0] is False  # the ViT of the review: its head at chance
    assert accuracy_gate([0.74], 0.5) == (False, pytest.approx(0.75))


def test_a_lone_layer_sits_at_depth_one_as_the_protocol_puts_it():
    from subclassbench.reproductions.variants import LayerCurve

    assert LayerCurve(["embedding"], [0.4]).best_depth == 1.0  # raw pixels: no division by zero
    assert LayerCurve(["stem", "block", "embedding"], [0.2, 0.5, 0.5]).best_depth == 0.5  # the shallowest of ties
