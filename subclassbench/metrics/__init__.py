"""Metrics on arrays, free of torch (so scoring workers start light): numpy in, floats out.

- :mod:`~subclassbench.metrics.partition`: a clustering against the truth (AMI, ARI, NMI, purity, matched accuracy).
- :mod:`~subclassbench.metrics.clustering`: the clustering back ends (faiss k-means, scikit-learn Ward).
- :mod:`~subclassbench.metrics.layers`: one layer's feature rank, ID/OOD alignment, the tunnel rule over a curve.
- :mod:`~subclassbench.metrics.similarity`: comparing representations (CKA, generalized Rand index, agreement).
"""

from subclassbench.metrics.layers import alignment, effective_rank, numerical_rank, pearson, tunnel_summary
from subclassbench.metrics.partition import cluster_scores, matched_accuracy, matched_count, purity
from subclassbench.metrics.similarity import (
    agreement,
    concept_pair_alignment,
    generalized_rand_index,
    linear_cka,
    soft_assignments,
)

__all__ = [
    "agreement",
    "alignment",
    "cluster_scores",
    "concept_pair_alignment",
    "effective_rank",
    "generalized_rand_index",
    "linear_cka",
    "matched_accuracy",
    "matched_count",
    "numerical_rank",
    "pearson",
    "purity",
    "soft_assignments",
    "tunnel_summary",
]
