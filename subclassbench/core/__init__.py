"""Plumbing every layer shares, with no knowledge of tasks, encoders or metrics.

- :mod:`~subclassbench.core.files`: atomic writes, all-or-nothing file sets, locks, safe names and paths.
- :mod:`~subclassbench.core.safeyaml`: YAML without code, aliases or unbounded size.
- :mod:`~subclassbench.core.hashing`: canonical JSON and sha256 (memoised file hashes).
- :mod:`~subclassbench.core.cache_dir`: where recomputable things are kept.
- :mod:`~subclassbench.core.registry`: the named registry that sources (and plug-ins) register in.
- :mod:`~subclassbench.core.progress`: progress on stderr.
- :mod:`~subclassbench.core.workerpool`: independent units of work in spawned worker processes.
- :mod:`~subclassbench.core.raycluster`: joining or starting a Ray cluster.
- :mod:`~subclassbench.core.executor`: many units of work, locally or on Ray, each retried once, then reported.
- :mod:`~subclassbench.core.version`: the package version recorded in results.
"""
