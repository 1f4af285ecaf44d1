"""The frozen evaluation protocol, version 1: every parameter in one place.

Every parameter lives in :data:`PROTOCOL_V1` (or is a named constant here
that it records) and is hashed into the protocol fingerprint that each result
records; changing any of them is a new protocol version, never a silent edit.
The code that applies them reads them from here (``clusterability.py``,
``transfer.py``, ``probes.py``). ``docs/protocol.md`` explains each choice.
"""

from __future__ import annotations

from typing import Any

from subclassbench.hashing import sha256_json
from subclassbench.probes import ProbeRecipe

PROTOCOL_VERSION = "1"
RANK_MAX_ROWS = 10_000  # SVD cost cap; rows are a fixed (seed 0) subsample beyond it
RANK_REL_TOL = 1e-3

PROTOCOL_V1: dict[str, Any] = {
    "version": PROTOCOL_VERSION,
    "features": {
        "mode": "model.eval() under torch.inference_mode()",
        "dtype": "float32",
        "pooling": {
            "cnn_map": "global average pool over H×W",
            "tokens": "mean over patch tokens, prefix (class/register) tokens excluded",
            "vector": "as is",
        },
        "layers": "stem, every residual/transformer block, final embedding (pre-classifier)",
    },
    "clusterability": {
        "normalization": "l2 per feature vector",
        "grouping": "within each superclass separately",
        "method": "kmeans",
        "backend": "faiss.Kmeans",
        "k": "number of subclasses of the superclass",
        "init": "random sample of k points",
        "n_init": 10,
        "max_iter": 100,
        "seed": 0,
        "points": "all points of the superclass",
        "metrics": ["ami", "ari", "nmi", "purity", "matched_acc"],
        "ami_average_method": "arithmetic",
        "nmi_average_method": "arithmetic",
        "aggregate": "unweighted mean over superclasses",
        "fine_acc": "Hungarian-matched counts summed over superclasses / N",
        "primary_metric": "ami",
        "secondary": {"method": "ward", "backend": "sklearn.cluster.AgglomerativeClustering", "max_points": 10000},
        "best_layer": "argmax of mean AMI over layers (ties: shallowest)",
        "committed_layer": (
            "argmax of mean AMI on the task's validation_split (ties: shallowest); the evaluation split's "
            "scores at that layer are reported (layer chosen on validation data, reported on test)"
        ),
    },
    "transfer": {
        "probe": ProbeRecipe().to_dict(),
        "probe_features": "standardised with the probe training set's per-unit mean and std",
        "id": "superclass labels; fit on the source subclasses of id_train_split, scored on those of id_test_split",
        "ood_shift": "the ID probe, unchanged, scored on the target subclasses of ood_split (superclass labels)",
        "ood_refit": "a probe fit on the target subclasses' own labels in id_train_split, scored on ood_split",
        "ood_retained": "100 · a_last / a_best over the OOD curve (Harun et al. 2024); 100 when the last layer is best",
        "tunnel_start": "layer of best OOD accuracy (ties: shallowest)",
        "headline_ood": "ood_refit when the task defines it, else ood_shift",
        "pearson_id_ood": "Pearson correlation of the ID and OOD accuracy curves over layers",
        "alignment": "(acc_id - chance_id) * (acc_ood - chance_ood), chance = 1 / number of classes",
        "numerical_rank": {"rel_tol": RANK_REL_TOL, "matrix": "uncentred ID-train features"},
        "effective_rank": "Roy & Vetterli (2007): exp(entropy of normalised singular values), same matrix",
        "rank_max_rows": RANK_MAX_ROWS,
    },
}


def protocol_fingerprint() -> str:
    return sha256_json(PROTOCOL_V1)
