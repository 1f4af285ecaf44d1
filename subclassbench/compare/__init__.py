"""Comparing representations.

- :mod:`~subclassbench.compare.representations`: layer × layer CKA, concept GRI, agreement over training.
- :mod:`~subclassbench.compare.nlmcd`: non-linear manifold concept discovery and concept matching.
"""
