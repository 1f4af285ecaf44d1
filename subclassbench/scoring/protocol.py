"""The frozen evaluation protocol: every parameter in one place.

The current protocol is :data:`PROTOCOL` (version 3). Every parameter lives in
it (or is a named constant here that it records) and is hashed into the
protocol fingerprint that each result records; changing any of them is a new
protocol version, never a silent edit. The code that applies them reads them
from here (``clusterability.py``, ``transfer.py``, ``probes.py``).
``docs/protocol.md`` gives each parameter's source and every departure from
the sources. :data:`PROTOCOL_V1` and :data:`PROTOCOL_V2` are kept, frozen, so the archived
results and leaderboards stay readable.
"""

from __future__ import annotations

from typing import Any

from subclassbench.core.hashing import sha256_json
from subclassbench.scoring.commitment import SALT as COMMITMENT_SALT
from subclassbench.scoring.probes import ProbeRecipe

PROTOCOL_VERSION = "3"
RANK_MAX_ROWS = 10_000  # SVD cost cap; rows are a fixed (seed 0) subsample beyond it
RANK_REL_TOL = 1e-3

# Version 1, frozen as it was (its probe recipe: best top-1 over epochs on the scored set).
PROTOCOL_V1: dict[str, Any] = {
    "version": "1",
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
        "probe": {
            "optimizer": "adamw",
            "lr": 0.001,
            "weight_decay": 0.0,
            "batch_size": 128,
            "epochs": 30,
            "label_smoothing": 0.1,
            "seed": 0,
            "standardize": True,
            "init": "zeros",
            "report": "best top-1 over epochs (and final-epoch top-1)",
        },
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


OVERCLUSTER_FACTORS = [1, 2, 3, 4, 5]
WARD_MAX_POINTS = 10_000  # per superclass: Ward needs O(n²) memory
TUNNEL_STRENGTH = [  # (lowest % retained, class), after Harun et al. (2024)
    (95.0, "negligible"),
    (90.0, "weak"),
    (80.0, "medium"),
    (0.0, "strong"),
]

# Version 2, frozen as it was when version 3 replaced it (2026-12-07).
PROTOCOL_V2: dict[str, Any] = {
    "version": "2",
    "features": PROTOCOL_V1["features"],
    "clusterability": {
        "normalization": "l2 per feature vector",
        "grouping": "within each true superclass separately",
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
        "within_superclass_acc": (
            "oracle: k-means within each true superclass of the scored split, clusters named by Hungarian matching "
            "on the scored split's labels; matched counts summed over superclasses / N (v1's fine_acc)"
        ),
        "reconstruction_acc": (
            "Yang et al. (2023): superclass predicted by a linear probe (the transfer probe recipe) fit on the train "
            "split's superclass labels; k-means (k = subclasses, same settings) fit per true superclass on the "
            "train split's l2-normalised features, clusters named by Hungarian matching on train subclass labels; "
            "each scored image takes the name of the nearest centroid of its predicted superclass; accuracy over "
            "all scored images (wrong superclass = wrong)"
        ),
        "reconstruction_train_split": "the task's transfer.id_train_split, else 'train'",
        "superclass_acc": "top-1 of that superclass probe on the scored split",
        "primary_metric": "ami",
        "primary_method": "kmeans (Ward overclustering reported beside it; see docs/protocol.md)",
        "ward": {
            "backend": "sklearn.cluster.AgglomerativeClustering (one full tree, cut at each k)",
            "k": "subclasses × factor",
            "overcluster_factors": OVERCLUSTER_FACTORS,
            "metrics": ["ami", "purity"],
            "max_points": WARD_MAX_POINTS,
        },
        "best_layer": "argmax of mean AMI over layers (ties: shallowest)",
        "committed_layer": (
            "argmax of mean AMI on the task's validation_split (ties: shallowest); the evaluation split's "
            "scores at that layer are reported (layer chosen on validation data, reported on test)"
        ),
    },
    "transfer": {
        "probe": ProbeRecipe().to_dict(),
        "epoch_selection": (
            "holdout: 10% of each probe's own training rows (stratified by label, seed 0), never fit on; "
            "the scored split is scored once, at the epoch with the best holdout accuracy (ties: the latest)"
        ),
        "probe_features": "standardised with the fitted rows' per-unit mean and std",
        "id": (
            "id_labels (superclass, or subclass for class-split tasks) on id_train_split, scored on id_test_split; "
            "only the source subclasses when the task defines a subpopulation shift"
        ),
        "subpop_shift": (
            "subpopulation shift (Santurkar et al. 2021), not OOD: the ID probe, unchanged, scored on the target "
            "subclasses of the shift split under their superclass labels"
        ),
        "subpop_refit": "a probe fit on the target subclasses' own labels in id_train_split, scored on the shift split",
        "ood_sets": (
            "Harun et al. (2024): each OOD set (another task whose classes the encoder was not trained on) gets its "
            "own probe on its subclass labels, fit on its train split and scored on its test split"
        ),
        "ood_curve": "mean over OOD sets of each layer's OOD accuracy",
        "ood_retained": "100 · a_penultimate / a_best over the OOD curve; 100 when no earlier layer beats the last",
        "tunnel": (
            "the best OOD layer (ties: shallowest) when it lies before the penultimate (last scored) layer and "
            "beats it; else null"
        ),
        "tunnel_strength": {name: low for low, name in TUNNEL_STRENGTH},
        "duplicate_layers": "a layer whose ID-train features equal the next layer's counts once (the later one)",
        "pearson_id_ood": "Pearson correlation of the ID and OOD accuracy curves over distinct layers",
        "alignment": "(acc_id - chance_id) * (acc_ood - chance_ood) per OOD set, chance = 1 / number of classes",
        "numerical_rank": {"rel_tol": RANK_REL_TOL, "matrix": "uncentred ID-train features"},
        "effective_rank": "Roy & Vetterli (2007): exp(entropy of normalised singular values), same matrix",
        "rank_max_rows": RANK_MAX_ROWS,
    },
}


# Version 3: the committed layer is cross-fitted on the evaluation split's hash halves (no image a network
# trained on chooses it, docs/layer-commitment.md), % OOD retained is Harun et al.'s mean over OOD sets (the mean
# curve's value kept beside it), and each result records whether the selection images were seen in training.
PROTOCOL: dict[str, Any] = {
    **PROTOCOL_V2,
    "version": PROTOCOL_VERSION,
    "clusterability": {
        **PROTOCOL_V2["clusterability"],
        "committed_layer": (
            "cross-fitted on the evaluation split: two fixed halves (sha256 of the salt and the image's manifest "
            "position, alternating within each subclass); the layer with the best mean AMI on half A (ties: "
            "shallowest) is scored on half B and the one best on B on A; every committed metric is the mean of the "
            "two (k-means clusters fitted once on the whole split, without labels); committed_gap is the mean of "
            "each half's best AMI minus that"
        ),
        "crossfit_salt": COMMITMENT_SALT,
        "selection_exposure": (
            "each result records whether the encoder trained on the selection images (the evaluation split): the "
            "submitter's declaration, a train card's split, untrained; else null"
        ),
    },
    "transfer": {
        **PROTOCOL_V2["transfer"],
        "ood_retained": (
            "Harun et al. (2024): mean over OOD sets of 100 · a_penultimate / a_best on each set's curve (100 when no "
            "earlier layer beats the last); the mean curve's value is recorded beside it as ood_retained_mean_curve"
        ),
        "tunnel": (
            "on the mean OOD curve: its best layer (ties: shallowest) when it lies before the penultimate (last "
            "scored) layer and beats it; else null; each OOD set records its own"
        ),
    },
}


def protocol_fingerprint() -> str:
    """Fingerprint of the current protocol (what new results record)."""
    return sha256_json(PROTOCOL)


def protocol_v1_fingerprint() -> str:
    return sha256_json(PROTOCOL_V1)


def protocol_v2_fingerprint() -> str:
    return sha256_json(PROTOCOL_V2)
