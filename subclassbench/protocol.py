"""The frozen evaluation protocol, version 1: clusterability and transfer.

Every parameter lives in :data:`PROTOCOL_V1` and is hashed into the protocol
fingerprint that each result records; changing any of them is a new protocol
version, never a silent edit. ``docs/protocol.md`` explains each choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.clustering import kmeans_faiss, l2_normalize, ward
from subclassbench.errors import SubclassbenchError
from subclassbench.features import LayerFeatures
from subclassbench.hashing import sha256_json
from subclassbench.metrics import cluster_scores, matched_count
from subclassbench.probes import ProbeRecipe
from subclassbench.tasks import SplitData
from subclassbench.transfer import RANK_MAX_ROWS, RANK_REL_TOL

PROTOCOL_VERSION = "1"

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


def score_clusterability(features: np.ndarray, split: SplitData) -> dict[str, Any]:
    """Protocol-v1 clusterability of one layer's features on one split."""
    params = PROTOCOL_V1["clusterability"]
    x = l2_normalize(features)
    per_superclass = []
    matched_total = ward_matched_total = 0
    ward_scores: list[dict[str, float]] = []
    for s, sup in enumerate(split.task.superclasses):
        rows = np.flatnonzero(split.superclass == s)
        truth = split.subclass[rows]
        k = len(sup.subclasses)
        if len(rows) < k:
            raise SubclassbenchError(
                f"superclass '{sup.name}' has {len(rows)} samples but {k} subclasses; the split is too small"
            )
        pred = kmeans_faiss(x[rows], k, n_init=params["n_init"], max_iter=params["max_iter"], seed=params["seed"])
        scores = cluster_scores(truth, pred)
        matched = matched_count(truth, pred)
        matched_total += matched
        entry: dict[str, Any] = {"superclass": sup.id, "name": sup.name, "n": len(rows), "k": k, **scores}
        if len(rows) <= params["secondary"]["max_points"]:
            ward_pred = ward(x[rows], k)
            ward_scores.append(cluster_scores(truth, ward_pred))
            ward_matched_total += matched_count(truth, ward_pred)
        per_superclass.append(entry)
    result: dict[str, Any] = {key: float(np.mean([e[key] for e in per_superclass])) for key in params["metrics"]}
    result["fine_acc"] = matched_total / len(split)
    if len(ward_scores) == len(per_superclass):
        result["ward"] = {key: float(np.mean([w[key] for w in ward_scores])) for key in params["metrics"]}
        result["ward"]["fine_acc"] = ward_matched_total / len(split)
    else:
        result["ward"] = None  # a superclass exceeded max_points: Ward's O(n²) memory is not spent
    result["per_superclass"] = per_superclass
    return result


def score_layers(layers: list[LayerFeatures], split: SplitData, progress: bool = False) -> list[dict[str, Any]]:
    """Clusterability of every layer, in layer order."""
    import sklearn
    from tqdm.auto import tqdm

    bar = tqdm(layers, desc="cluster layers", unit="layer", disable=not progress or None, leave=False)
    # Inputs are checked once here (finite float32, integer labels); scikit-learn's per-call
    # validation otherwise costs more than the clustering itself on superclass-sized problems.
    for layer in layers:
        if not np.isfinite(layer.features).all():
            raise SubclassbenchError(f"layer {layer.name} has NaN or infinite features; check the encoder's weights")
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return [score_clusterability(layer.features, split) for layer in bar]


def commit_layer(layers: list[dict[str, Any]], validation: list[dict[str, Any]], split: str) -> dict[str, Any]:
    """Brain-Score's layer commitment: pick the layer on validation data, report its test scores.

    ``layers`` carry the evaluation split's clusterability; ``validation`` the
    same layers scored on ``split``.
    """
    val_amis = [v["ami"] for v in validation]
    chosen = int(np.argmax(val_amis))  # first of ties: the shallowest
    best_ami = max(layer["clusterability"]["ami"] for layer in layers)
    committed = layers[chosen]["clusterability"]
    return {
        "committed_layer": layers[chosen]["name"],
        "committed_ami": committed["ami"],
        "committed_fine_acc": committed["fine_acc"],
        "committed_gap": best_ami - committed["ami"],
        "selection": {"split": split, "ami": val_amis[chosen], "per_layer_ami": val_amis},
    }


def summarize(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Best layer (by mean AMI) and the last layer's headline numbers."""
    amis = [layer["clusterability"]["ami"] for layer in layers]
    best = int(np.argmax(amis))  # argmax takes the first, i.e. shallowest, of ties
    last = layers[-1]
    return {
        "primary_metric": "ami",
        "best_layer": layers[best]["name"],
        "best_depth": layers[best]["depth"],
        "best_ami": amis[best],
        "best_fine_acc": layers[best]["clusterability"]["fine_acc"],
        "last_layer": last["name"],
        "last_ami": last["clusterability"]["ami"],
        "last_fine_acc": last["clusterability"]["fine_acc"],
    }
