"""Ranks that are honest about ties: a paired bootstrap over the evaluation images the rows share.

Two results on the same task and images carry bootstrap replicates drawn with
the *same* resampling counts (``bootstrap.py``), so replicate b of one row and
replicate b of another score the same resampled images: their difference is
a paired bootstrap of the difference of the two scores. Row *j* is
**distinguishably better** than row *i* when the 95% percentile interval of
``score_j − score_i`` lies above zero. A row's rank is 1 + the number of rows
distinguishably better than it, so rows that cannot be told apart share a
rank (competition ranking: 1, 1, 3 …). No correction for multiple
comparisons is made: each rank answers "how many rows beat this one",
each at 95%.

Rows that cannot be paired — no replicates (an older result), other images
(non-canonical data) or other bootstrap settings — are compared by their
point values alone, as before: a better point value then counts as better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from subclassbench.uncertainty.bootstrap import interval


@dataclass(frozen=True)
class Contender:
    """One row's score, its replicates and what they were drawn from (None when it has none)."""

    value: float | None
    replicates: np.ndarray | None = None
    pairing: str | None = None  # equal strings: replicates drawn on the same images with the same counts


def better(j: Contender, i: Contender) -> bool:
    """Whether row ``j`` beats row ``i`` distinguishably (paired) or, when unpairable, on its point value."""
    if j.value is None:
        return False
    if i.value is None:
        return True
    paired = j.replicates is not None and i.replicates is not None and j.pairing == i.pairing and j.pairing
    if paired:
        assert j.replicates is not None and i.replicates is not None
        low, _ = interval(j.replicates - i.replicates)
        return low > 0
    return j.value > i.value


def tie_aware_ranks(rows: list[Contender]) -> list[int]:
    """1 + how many rows are distinguishably better, for each row (in the order given)."""
    return [1 + sum(better(j, i) for k, j in enumerate(rows) if k != n) for n, i in enumerate(rows)]


def difference(j: Contender, i: Contender) -> tuple[float, list[float]] | None:
    """``j − i`` with its paired 95% interval, or None when the two cannot be paired."""
    if j.replicates is None or i.replicates is None or j.pairing != i.pairing or not j.pairing:
        return None
    assert j.value is not None and i.value is not None
    return j.value - i.value, interval(j.replicates - i.replicates)
