"""Reproductions: the five papers' findings re-run with the benchmark itself (``subclassbench reproduce``).

``plan`` says what a claim trains and scores at each scale, ``claims`` holds the claims, one module each, and
how their runs are read, ``stats`` the statistics across seeds, ``harness`` runs the stages and ``report``
writes ``docs/reproductions/<claim>.md``.
"""

from subclassbench.reproductions.harness import Reproduction, reproduce
from subclassbench.reproductions.plan import SCALES

__all__ = ["SCALES", "Reproduction", "reproduce"]
