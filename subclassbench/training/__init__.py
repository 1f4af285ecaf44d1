"""Training reference encoders.

- :mod:`~subclassbench.training.trainer`: one run on a task's superclass or subclass labels (``train``).
- :mod:`~subclassbench.training.runs`: many runs from one file (``train-runs``).
"""
