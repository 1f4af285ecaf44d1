"""Feature matrices held in memory or in a ``.npy`` file, read a block of rows at a time.

A split's pooled features of every layer can be larger than memory (ResNet-50
on BREEDS entity13: ~23 GB). Extraction streams them to the feature cache
(:class:`subclassbench.features.cache.EntryWriter`); scoring then reads one layer, or
a block of one layer's rows, at a time through :class:`Matrix` and
:class:`Rows`, so peak memory stays near one layer's matrix however many
layers and images there are.

A file is read through a memory map opened per block and dropped after it:
pages of a map that stays open count as the process's resident memory, while
pages of a closed one are only the kernel's file cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# Bytes of one layer read at once by block-wise consumers (statistics, standardisation, checks): large
# enough that reading is not per-row work, small enough that a block's float64 temporaries stay small.
BLOCK_BYTES = 8 << 20


class Matrix:
    """An ``N × D`` float32 matrix: an array, or a float32 ``.npy`` file (a checked cache entry)."""

    def __init__(self, source: np.ndarray | Path) -> None:
        self.source = source
        if isinstance(source, np.ndarray):
            self.shape: tuple[int, ...] = tuple(source.shape)
        else:
            mapped = np.load(source, mmap_mode="r", allow_pickle=False)  # reads the header only
            self.shape = tuple(mapped.shape)
            del mapped

    @property
    def in_memory(self) -> bool:
        return isinstance(self.source, np.ndarray)

    def load(self) -> np.ndarray:
        """The whole matrix, in this process's memory (a file is read, not mapped)."""
        if isinstance(self.source, np.ndarray):
            return self.source
        loaded: np.ndarray = np.load(self.source, allow_pickle=False)
        return loaded

    def rows(self, index: np.ndarray | None = None) -> Rows:
        """A lazy view of some rows (all when ``index`` is None), in the given order."""
        return Rows(self, None if index is None else np.asarray(index, dtype=np.int64))

    def gather(self, index: np.ndarray | slice) -> np.ndarray:
        """Rows ``index`` of the matrix as a new array; a file is mapped only for the duration."""
        if isinstance(self.source, np.ndarray):
            return np.array(self.source[index])
        mapped = np.load(self.source, mmap_mode="r", allow_pickle=False)
        try:
            return np.array(mapped[index])
        finally:
            del mapped


class Rows:
    """Some rows of a :class:`Matrix`, read only when asked for: whole (``np.asarray``) or block by block."""

    def __init__(self, matrix: Matrix, index: np.ndarray | None) -> None:
        self.matrix, self.index = matrix, index

    @classmethod
    def of(cls, x: np.ndarray | Rows) -> Rows:
        return x if isinstance(x, Rows) else Matrix(np.asarray(x)).rows()

    @property
    def shape(self) -> tuple[int, int]:
        n = self.matrix.shape[0] if self.index is None else len(self.index)
        return int(n), int(self.matrix.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def select(self, sub: np.ndarray) -> Rows:
        """Rows of this view: ``sub`` is an index (or boolean mask) into it."""
        sub = np.asarray(sub)
        if sub.dtype == bool:
            sub = np.flatnonzero(sub)
        return Rows(self.matrix, sub.astype(np.int64) if self.index is None else self.index[sub])

    def block_rows(self, block_bytes: int = BLOCK_BYTES) -> int:
        return max(1, block_bytes // max(1, 4 * self.shape[1]))

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[np.ndarray]:
        """Consecutive blocks of the view's rows (each a new array of about ``block_bytes``)."""
        n, step = self.shape[0], self.block_rows(block_bytes)
        for start in range(0, n, step):
            stop = min(start + step, n)
            yield self.matrix.gather(slice(start, stop) if self.index is None else self.index[start:stop])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.matrix.in_memory:
            out = self.matrix.load() if self.index is None else self.matrix.load()[self.index]
        else:
            out = np.empty(self.shape, dtype=np.float32)
            start = 0
            for block in self.blocks():
                out[start : start + len(block)] = block
                start += len(block)
        return out if dtype is None else out.astype(dtype, copy=False)


def column_moments(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Float64 column means and standard deviations, computed block by block.

    Bit for bit ``x.mean(axis=0, dtype=np.float64)`` and ``x.std(axis=0, dtype=np.float64)``:
    numpy reduces a C-ordered matrix over axis 0 by adding rows in order, so each block's rows
    are added to the running sums in that same order (the running sum is the block's first row),
    and no float64 copy of the whole matrix is made."""
    n = len(rows)
    if n == 0:
        raise ValueError("column moments of an empty matrix")
    total = _running_sum(block.astype(np.float64) for block in rows.blocks())
    mean = total / n
    squares = _running_sum(_squared_deviation(block, mean) for block in rows.blocks())
    return mean, np.sqrt(squares / n)


def _squared_deviation(block: np.ndarray, mean: np.ndarray) -> np.ndarray:
    deviation: np.ndarray = block - mean  # float64, as numpy's var computes it
    np.multiply(deviation, deviation, out=deviation)
    return deviation


def _running_sum(blocks: Iterator[np.ndarray]) -> np.ndarray:
    total: np.ndarray | None = None
    for block in blocks:
        stacked = block if total is None else np.concatenate([total[None], block])
        total = np.add.reduce(stacked, axis=0)
    assert total is not None
    return total


def all_finite(rows: Rows) -> bool:
    return all(bool(np.isfinite(block).all()) for block in rows.blocks())
