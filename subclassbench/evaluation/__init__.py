"""Evaluation: task → encoder → features → protocol → result.

- :mod:`~subclassbench.evaluation.request`: what an evaluation is asked to do, checked before any work.
- :mod:`~subclassbench.evaluation.pipeline`: the pipeline behind ``subclassbench evaluate``.
- :mod:`~subclassbench.evaluation.record`: the result document assembled from an evaluation.
- :mod:`~subclassbench.evaluation.outputs`: where results go (default paths, ``--out`` checks).
- :mod:`~subclassbench.evaluation.api`: the Python API, ``subclassbench.evaluate``.
- :mod:`~subclassbench.evaluation.matrix`: model × task matrices (``subclassbench run``).
"""
