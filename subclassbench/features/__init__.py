"""Per-layer features: the cached boundary between *extract* and *score*.

- :mod:`~subclassbench.features.extraction`: hooks and pooling, one forward pass per batch, shards.
- :mod:`~subclassbench.features.cache`: the content-addressed feature cache.
- :mod:`~subclassbench.features.matrices`: feature matrices in memory or on disk, read a block of rows at a time.
"""
