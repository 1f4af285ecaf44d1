"""Clustering metrics: partitions in, floats out.

AMI, ARI and NMI are scikit-learn's (arithmetic averaging; Vinh, Epps &
Bailey 2010; Hubert & Arabie 1985). Purity and Hungarian-matched accuracy are
computed here from the contingency table. All are invariant to relabelling
the clusters; ``matched_count`` also underlies fine-label recovery accuracy
(Yang, Steinhardt & Hu 2023): matched counts summed over superclasses ÷ N.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def purity(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Fraction of samples in the majority true class of their cluster."""
    table = contingency_matrix(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())


def matched_count(labels_true: np.ndarray, labels_pred: np.ndarray) -> int:
    """Samples correctly labelled under the best one-to-one cluster→class map (Hungarian)."""
    table = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return int(table[rows, cols].sum())


def matched_accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    return matched_count(labels_true, labels_pred) / len(labels_true)


def scores_and_matches(labels_true: np.ndarray, labels_pred: np.ndarray) -> tuple[dict[str, float], int]:
    """All protocol-v1 clustering scores for one partition, and its Hungarian-matched count (computed once)."""
    matched = matched_count(labels_true, labels_pred)
    scores = {
        "ami": float(adjusted_mutual_info_score(labels_true, labels_pred)),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "purity": purity(labels_true, labels_pred),
        "matched_acc": matched / len(labels_true),
    }
    return scores, matched


def cluster_scores(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """All protocol-v1 clustering scores for one partition against the truth."""
    return scores_and_matches(labels_true, labels_pred)[0]
