"""Feature matrices in memory or on disk (subclassbench.features.matrices): block moments equal numpy's, rows
of a file equal rows of the array."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.evaluation.pipeline import degenerate_flags
from subclassbench.features import matrices
from subclassbench.features.matrices import Matrix, Rows, all_finite, column_moments


@pytest.mark.parametrize("shape", [(1, 1), (37, 3), (1000, 9), (4097, 64)])
def test_block_moments_are_numpys_bit_for_bit(shape, monkeypatch):
    """Standardisation statistics read block by block equal numpy's whole-matrix mean and std exactly,
    so streamed probes score what in-memory probes score."""
    rng = np.random.RandomState(sum(shape))
    x = (rng.randn(*shape) * 10 + rng.randn(shape[1]) * 300).astype(np.float32)
    monkeypatch.setattr(matrices, "BLOCK_BYTES", 4 * shape[1] * 5)  # five rows a block: many blocks
    rows = Matrix(x).rows()
    mean, std = column_moments(Rows(rows.matrix, None))
    assert np.array_equal(mean, x.mean(axis=0, dtype=np.float64))
    assert np.array_equal(std, x.std(axis=0, dtype=np.float64))


def test_rows_of_a_file_equal_rows_of_the_array(tmp_path):
    x = np.random.RandomState(1).randn(50, 4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    index = np.array([3, 1, 49, 7, 7])
    for matrix in (Matrix(x), Matrix(tmp_path / "x.npy")):
        view = matrix.rows(index)
        assert view.shape == (5, 4) and np.array_equal(np.asarray(view), x[index])
        assert np.array_equal(np.concatenate(list(view.blocks(block_bytes=16 * 2))), x[index])
        assert np.array_equal(np.asarray(view.select(np.array([True, False, True, False, True]))), x[index[[0, 2, 4]]])
        assert np.array_equal(np.asarray(matrix.rows()), x)
    bad = x.copy()
    bad[13, 2] = np.nan
    assert all_finite(Matrix(x).rows()) and not all_finite(Matrix(bad).rows(np.arange(10, 20)))
    assert degenerate_flags(Matrix(np.zeros((5, 3), np.float32)).rows()) == ["constant", "mostly_dead_units"]
    assert degenerate_flags(x) == []
