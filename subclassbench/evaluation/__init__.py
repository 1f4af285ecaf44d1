"""Evaluation: task → encoder → features → protocol → result.

- :mod:`~subclassbench.evaluation.pipeline`: the pipeline behind ``subclassbench evaluate``.
- :mod:`~subclassbench.evaluation.api`: the Python API, ``subclassbench.evaluate``.
- :mod:`~subclassbench.evaluation.matrix`: model × task matrices (``subclassbench run``).
"""
