"""Uncertainty: the stratified bootstrap, the calibration of its intervals, and ranks honest about ties.

- :mod:`~subclassbench.uncertainty.bootstrap`: replicates of every headline metric and their intervals.
- :mod:`~subclassbench.uncertainty.calibration`: do nominal 95% intervals cover the truth?
- :mod:`~subclassbench.uncertainty.ranking`: paired-bootstrap differences and tie-aware ranks.
"""

from subclassbench.uncertainty.bootstrap import BOOTSTRAP, interval
from subclassbench.uncertainty.ranking import Contender, difference, tie_aware_ranks

__all__ = ["BOOTSTRAP", "Contender", "difference", "interval", "tie_aware_ranks"]
