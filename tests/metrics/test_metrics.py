"""The metrics package (subclassbench.metrics): its exports."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_metrics_package_exposes_the_comparison_metrics():
    import subclassbench.metrics as metrics

    x = np.random.RandomState(0).randn(50, 4)
    assert metrics.linear_cka(x, 3 * x) == pytest.approx(1.0)
    assert metrics.generalized_rand_index(np.eye(5)[[0, 1, 2] * 5], np.eye(5)[[0, 1, 2] * 5]) == pytest.approx(1.0)
