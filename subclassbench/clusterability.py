"""Clusterability (protocol v1): k-means within each superclass, scored against the subclasses, per layer.

The parameters come from :data:`subclassbench.protocol.PROTOCOL_V1`; the
committed layer (Brain-Score's layer commitment) is chosen here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from subclassbench.clustering import kmeans_faiss, l2_normalize, ward
from subclassbench.errors import SubclassbenchError
from subclassbench.metrics import scores_and_matches
from subclassbench.protocol import PROTOCOL_V1

if TYPE_CHECKING:  # types only: summaries are recomputed (integrity.py) without loading torch
    from subclassbench.features import LayerFeatures
    from subclassbench.tasks import SplitData


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
        present = np.unique(truth)
        if len(present) < k:  # k-means would look for a subclass the data does not hold
            absent = next(sub.name for i, sub in enumerate(sup.subclasses) if i not in present)
            raise SubclassbenchError(
                f"subclass '{absent}' of superclass '{sup.name}' has no samples in split '{split.split}'; "
                "the data is incomplete or does not match the task"
            )
        pred = kmeans_faiss(x[rows], k, n_init=params["n_init"], max_iter=params["max_iter"], seed=params["seed"])
        scores, matched = scores_and_matches(truth, pred)
        matched_total += matched
        entry: dict[str, Any] = {"superclass": sup.id, "name": sup.name, "n": len(rows), "k": k, **scores}
        if len(rows) <= params["secondary"]["max_points"]:
            ward_entry, ward_matched = scores_and_matches(truth, ward(x[rows], k))
            ward_scores.append(ward_entry)
            ward_matched_total += ward_matched
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
