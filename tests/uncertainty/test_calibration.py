"""Interval calibration (subclassbench.uncertainty.calibration): nominal 95% intervals cover known
population values, near chance too."""

from __future__ import annotations

import pytest

from subclassbench.uncertainty.calibration import NEAR_CHANCE, Hierarchy, measure


def test_nominal_95_percent_intervals_cover_known_population_values():
    """The suite's small calibration (the full one: benchmarks/bench_bootstrap.py, docs/uncertainty.md)."""
    for coverage in measure(Hierarchy(images_per_superclass=100), draws=400, resamples=200):
        assert 0.92 <= coverage.rate <= 0.98, (coverage.metric, coverage.rate)


def test_ami_intervals_cover_near_chance():
    """Where untrained and weak encoders score (population AMI 0.04): the uncentred intervals covered 0-15%."""
    (ami, *_) = measure(NEAR_CHANCE, draws=200, resamples=200)
    assert NEAR_CHANCE.population_ami() == pytest.approx(0.039, abs=0.001)
    assert 0.92 <= ami.rate <= 0.99, ami.rate
