"""Interval calibration (subclassbench.uncertainty.calibration): nominal 95% intervals cover known
population values, near chance too."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy

from subclassbench.uncertainty.calibration import AT_CHANCE, NEAR_CHANCE, Hierarchy, measure


def test_nominal_95_percent_intervals_cover_known_population_values():
    """The suite's small calibration (the full one: benchmarks/bench_bootstrap.py, docs/uncertainty.md)."""
    for coverage in measure(Hierarchy(images_per_superclass=100), draws=400, resamples=200):
        assert 0.92 <= coverage.rate <= 0.98, (coverage.metric, coverage.rate)


def test_ami_intervals_cover_near_chance():
    """Where untrained and weak encoders score (population AMI 0.04): the uncentred intervals covered 0-15%."""
    (ami, *_) = measure(NEAR_CHANCE, draws=200, resamples=200)
    assert NEAR_CHANCE.population_ami() == pytest.approx(0.039, abs=0.001)
    assert 0.92 <= ami.rate <= 0.99, ami.rate


def test_population_ami_is_mutual_information_over_the_mean_entropy():
    """Each superclass's population value from entropies (scipy), I = H(subclass) + H(cluster) − H(joint), over
    the arithmetic mean of the two marginal entropies (AMI's default normalisation); unequal subclass weights
    make the two marginals differ."""
    h = Hierarchy()
    values = []
    for s, weights in enumerate(h.subclass_weights):
        joint = h.joint(s)
        assert joint.sum() == pytest.approx(1.0) and joint.sum(1) == pytest.approx(weights)
        assert np.diag(joint) == pytest.approx(np.asarray(weights) * (1 - h.flip[s]))
        sub, clu = entropy(joint.sum(1)), entropy(joint.sum(0))
        values.append((sub + clu - entropy(joint.ravel())) / ((sub + clu) / 2))
    assert h.population_ami() == pytest.approx(np.mean(values), abs=1e-12)
    assert Hierarchy(flip=(0.0, 0.0, 0.0)).population_ami() == pytest.approx(1.0)
    assert AT_CHANCE.population_ami() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("curve", "retained"),
    [
        ((0.55, 0.75, 0.70, 0.65), 100 * 0.65 / 0.75),  # best at layer 1
        ((0.5, 0.8, 0.6), 100 * 0.6 / 0.8),  # best at the penultimate layer
        ((0.5, 0.6, 0.7), 100.0),  # best at the last: no tunnel
        ((0.7, 0.6, 0.7), 100.0),  # the last ties the best
    ],
)
def test_population_retained_is_harun_et_al_s_ratio(curve, retained):
    assert Hierarchy(curve=curve).population_retained() == pytest.approx(retained)


def test_a_curve_without_a_tunnel_is_covered_at_exactly_100():
    """Every replicate of a steeply rising curve has no tunnel: the interval is [100, 100], and holding the
    population value on its edge counts as covering it."""
    h = Hierarchy(images_per_superclass=60, curve=(0.1, 0.5, 0.95))
    ami, accuracy, retained = measure(h, draws=5, resamples=50)
    assert [c.metric for c in (ami, accuracy, retained)] == ["ami", "accuracy", "retained"]
    assert retained.covered == retained.draws == 5 and retained.mean_width == 0.0
    assert 0 <= ami.covered <= 5 and ami.mean_width > 0 and accuracy.mean_width > 0


def test_a_calibration_is_repeatable_from_its_seed():
    """The coverage table in docs/uncertainty.md is a seeded measurement: the same seed draws the same samples
    and resamples; another seed others."""
    h = Hierarchy(images_per_superclass=40)
    first = measure(h, draws=3, resamples=30, seed=7)
    assert measure(h, draws=3, resamples=30, seed=7) == first
    assert [c.mean_width for c in measure(h, draws=3, resamples=30, seed=8)] != [c.mean_width for c in first]
