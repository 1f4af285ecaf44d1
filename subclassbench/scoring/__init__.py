"""The frozen protocol and the metric families it scores every layer with.

Nothing is re-exported here: scoring workers import
:mod:`~subclassbench.scoring.clusterability_units` alone, and must start without torch.

- :mod:`~subclassbench.scoring.protocol`: every protocol parameter and the fingerprint.
- :mod:`~subclassbench.scoring.family`: the metric-family interface and registry (how to add a family).
- :mod:`~subclassbench.scoring.clusterability_family`, :mod:`~subclassbench.scoring.transfer_family`: the two
  families of the protocol, registered.
- :mod:`~subclassbench.scoring.samples`: the per-sample outputs of scoring and their sidecar file.
- :mod:`~subclassbench.scoring.clusterability`: subclass clusterability, reconstruction, the committed layer.
- :mod:`~subclassbench.scoring.clusterability_units`: one (layer, superclass) unit of clusterability work.
- :mod:`~subclassbench.scoring.transfer`: ID, subpopulation-shift and OOD probes per layer; the tunnel.
- :mod:`~subclassbench.scoring.probes`: linear probes on frozen features.
"""
