"""Per-layer curves and feature geometry: rank, effective rank, ID/OOD alignment and the tunnel rule.

Numbers over a layer's feature matrix (its singular values) or over one
accuracy curve across layers; numpy in, floats out.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values of the uncentred matrix, largest first (float64)."""
    return np.linalg.svd(np.asarray(x, dtype=np.float64), compute_uv=False)


def numerical_rank(x: np.ndarray, rel_tol: float = 1e-3, s: np.ndarray | None = None) -> int:
    """Number of singular values above ``rel_tol`` × the largest; ``s`` reuses precomputed ones."""
    s = singular_values(x) if s is None else s
    if s.size == 0 or s[0] == 0:
        return 0
    return int((s > rel_tol * s[0]).sum())


def effective_rank(x: np.ndarray, s: np.ndarray | None = None) -> float:
    """Roy & Vetterli (2007): exp of the entropy of the normalised singular values."""
    s = singular_values(x) if s is None else s
    total = s.sum()
    if total == 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def tunnel_summary(
    names: list[str], id_curve: list[float], curve: list[float], distinct: list[bool] | None = None
) -> dict[str, Any]:
    """One OOD accuracy curve over layers, by Harun et al. (2024)'s rule.

    Only distinct layers count (``distinct[i]`` False drops a layer that
    duplicates the next one). The penultimate layer is the last scored one
    (the embedding before the classifier). The best layer is the argmax of the
    curve (the shallowest of ties); it starts a tunnel only when it lies
    before the penultimate layer *and* beats it. % retained is
    100 · a_penultimate / a_best, 100 when there is no tunnel.
    """
    keep = [i for i in range(len(curve)) if distinct is None or distinct[i]]
    acc = np.asarray([curve[i] for i in keep], dtype=np.float64)
    best = int(np.argmax(acc))
    last = len(acc) - 1
    tunnel = best < last and acc[best] > acc[last]
    retained = float(100.0 * acc[last] / acc[best]) if tunnel else 100.0
    return {
        "ood_retained": retained,
        "tunnel": bool(tunnel),
        "best_layer": names[keep[best]],
        "best_acc": float(acc[best]),
        "penultimate_acc": float(acc[last]),
        "pearson_id_ood": pearson([id_curve[i] for i in keep], acc.tolist()),
    }


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation of two curves; None when undefined (fewer than 2 points or a flat curve)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def alignment(acc_id: float, acc_ood: float, chance_id: float, chance_ood: float) -> float:
    """ID/OOD alignment A = (α_id − c_id)(α_ood − c_ood): positive when both beat chance."""
    return float((acc_id - chance_id) * (acc_ood - chance_ood))
