"""Every figure subclassbench draws (per-layer curves, heatmaps, agreement): :mod:`~subclassbench.figures.drawing`."""
