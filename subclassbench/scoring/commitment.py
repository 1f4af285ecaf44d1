"""Layer commitment by cross-fitting on the evaluation split (protocol v3, docs/protocol.md §3.5).

Protocol v2 chose the committed layer on the task's validation split, which every CIFAR-10 task carves from
CIFAR-10 train: networks trained on CIFAR-10 had their layer chosen on images they fitted
(docs/layer-commitment.md measured what that cost). v3 chooses it on the evaluation split itself, without
scoring a layer on the images that chose it: the split is cut into two fixed halves by a salted hash,
stratified by subclass; the layer with the best AMI on half A is scored on half B, the one best on B is scored
on A, and the committed score is the mean of the two (cross-fitting). Every committed metric (AMI, the
within-superclass oracle, reconstruction and superclass accuracy, Ward's AMI) is read the same way.

The k-means clusters are the protocol's own, fitted once on the whole evaluation split: fitting them reads no
label, so a layer chosen on half A's labels and scored on half B's is an honest hold-out. Everything here is
computed from per-image outputs and a matrix of image counts, so the same function gives the point estimate
(one row of ones) and its bootstrap replicates (``results.intervals``): each replicate repeats the choice on
its own resample, so the interval includes the selection's own variability.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from subclassbench.uncertainty.bootstrap import cluster_replicates

SALT = "subclassbench/crossfit-halves/v1"  # part of the protocol: changing it changes every half
HALVES = ("A", "B")


def hash_key(index: int) -> bytes:
    """The sort key of an evaluation image: sha256 of the salt and its position in the split's manifest order
    (the order is fixed by the task's manifest, so a position names one image)."""
    return hashlib.sha256(f"{SALT}:{index}".encode()).digest()


def hash_halves(superclass: np.ndarray, subclass: np.ndarray) -> np.ndarray:
    """A boolean mask of half A: within each (superclass, subclass), the images in hash order alternate between
    the halves, so every subclass is split evenly (its odd image goes to A)."""
    half = np.zeros(len(superclass), dtype=bool)
    strata = np.stack([np.asarray(superclass), np.asarray(subclass)], axis=1)
    for stratum in np.unique(strata, axis=0):
        rows = np.flatnonzero(np.all(strata == stratum, axis=1))
        ordered = sorted(rows.tolist(), key=hash_key)
        half[ordered[0::2]] = True
    return half


@dataclass
class Crossfit:
    """Cross-fitted committed metrics: each a (R,) array, row 0 the estimate when ``counts`` came from
    ``bootstrap.with_estimate`` (a single row of ones gives the estimate alone)."""

    chosen: tuple[np.ndarray, np.ndarray]  # (R,) layer indices chosen on half A and on half B
    metrics: dict[str, np.ndarray]  # committed metric → (R,)
    half_ami: tuple[np.ndarray, np.ndarray]  # (L, R) each layer's AMI on half A and on half B
    gap: np.ndarray  # (R,) mean of each half's best AMI minus the cross-fitted AMI: what choosing elsewhere costs
    half_a: np.ndarray  # (N,) the images of half A (the rest are half B)


def _share(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per replicate, the count-weighted mean of a per-image 0/1 array."""
    share: np.ndarray = (counts @ values.astype(np.float64)) / counts.sum(axis=1)
    return share


def crossfit(
    counts: np.ndarray,
    superclass: np.ndarray,
    subclass: np.ndarray,
    kmeans: np.ndarray,
    shares: dict[str, np.ndarray | None] | None = None,
    ward: dict[int, np.ndarray] | None = None,
) -> Crossfit:
    """The cross-fitted committed metrics from per-image outputs.

    ``counts`` is (R, N) image counts; ``kmeans`` (L, N) cluster assignments per layer; ``shares`` maps a
    committed metric (``committed_reconstruction_acc`` …) to its (L, N) per-image booleans, whose share of the
    scored half it is (None: the result has no such metric); ``ward`` maps a layer index
    to its Ward assignments (N,), for the layers that keep them. The choice on each half reads that half's
    plain AMI (uncentred: what the choice itself would see on that sample); the score on the other half is the
    AMI as intervals centre it (``bootstrap.cluster_replicates``), so row 0 is the plain estimate in both."""
    half_a = hash_halves(superclass, subclass)
    masks = (half_a, ~half_a)
    n = counts.shape[1]
    n_layers = kmeans.shape[0]
    ami: list[np.ndarray] = []  # per half: (L, R) centred, for scoring
    raw: list[np.ndarray] = []  # per half: (L, R) uncentred, for choosing
    matched: list[np.ndarray] = []
    for mask in masks:
        part = counts * mask[None, :]
        found = [cluster_replicates(part, superclass, subclass, kmeans[i]) for i in range(n_layers)]
        ami.append(np.stack([f.ami for f in found]))
        raw.append(np.stack([f.raw_ami for f in found]))
        # matched_acc divides by all N images; on a half, divide by the half's own count instead
        scale = n / part.sum(axis=1)
        matched.append(np.stack([f.matched_acc * scale for f in found]))
    cols = np.arange(counts.shape[0])
    chosen_a, chosen_b = np.argmax(raw[0], axis=0), np.argmax(raw[1], axis=0)  # first of ties: the shallowest

    def crossed(per_half: list[np.ndarray]) -> np.ndarray:
        """Mean of (chosen on A, read on B) and (chosen on B, read on A)."""
        mean: np.ndarray = (per_half[1][chosen_a, cols] + per_half[0][chosen_b, cols]) / 2
        return mean

    metrics = {"committed_ami": crossed(ami), "committed_within_superclass_acc": crossed(matched)}
    for key, values in (shares or {}).items():
        if values is not None:
            per_half = [np.stack([_share(counts * m[None, :], values[i]) for i in range(n_layers)]) for m in masks]
            metrics[key] = crossed(per_half)
    if ward is not None:
        # Ward assignments are kept for the estimate's two choices only: the choice is held at the estimate's.
        a, b = int(chosen_a[0]), int(chosen_b[0])
        if a in ward and b in ward:
            on_b = cluster_replicates(counts * masks[1][None, :], superclass, subclass, ward[a]).ami
            on_a = cluster_replicates(counts * masks[0][None, :], superclass, subclass, ward[b]).ami
            metrics["committed_ward_ami"] = (on_b + on_a) / 2
    gap = (ami[0].max(axis=0) + ami[1].max(axis=0)) / 2 - metrics["committed_ami"]
    return Crossfit(chosen=(chosen_a, chosen_b), metrics=metrics, half_ami=(ami[0], ami[1]), gap=gap, half_a=half_a)


def commit(
    names: list[str],
    superclass: np.ndarray,
    subclass: np.ndarray,
    kmeans: np.ndarray,
    shares: dict[str, np.ndarray | None] | None,
    split: str,
    ward: dict[int, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The summary entries of the committed layer(s) under cross-fitting (the point estimate); ``shares`` as
    :func:`crossfit`'s (the probe's reconstruction and superclass accuracy are always listed, None without a
    train split)."""
    ones = np.ones((1, len(superclass)))
    fit = crossfit(ones, superclass, subclass, kmeans, shares, ward)
    half_a = fit.half_a
    a, b = names[int(fit.chosen[0][0])], names[int(fit.chosen[1][0])]
    out: dict[str, Any] = {
        "committed_layer": a if a == b else f"{a} / {b}",
        "committed_layers": [a, b],
        **{key: float(values[0]) for key, values in fit.metrics.items()},
        "committed_gap": float(fit.gap[0]),
        "selection": {
            "method": "crossfit",
            "split": split,
            "salt": SALT,
            "halves": {"A": int(half_a.sum()), "B": int((~half_a).sum())},
            "chosen": {"A": a, "B": b},
            "per_layer_ami": {"A": fit.half_ami[0][:, 0].tolist(), "B": fit.half_ami[1][:, 0].tolist()},
        },
    }
    for key in ("committed_reconstruction_acc", "committed_superclass_acc"):
        out.setdefault(key, None)
    return out


def committed_layer_names(summary: dict[str, Any]) -> list[str]:
    """The layer names a summary committed to: v3's two cross-fitted choices (deduplicated), v2's one."""
    layers = summary.get("committed_layers")
    if layers:
        return list(dict.fromkeys(str(name) for name in layers))
    single = summary.get("committed_layer")
    return [str(single)] if single else []


def exposure(declared: bool | None, card: dict[str, Any] | None, trained: bool, split: str) -> tuple[bool | None, str]:
    """Whether the images the layer was chosen on (the evaluation split) were in the encoder's training data,
    and on what that rests: the submitter's declaration, a `subclassbench train` card's training split, an
    untrained network; otherwise not known (None)."""
    if declared is not None:
        return declared, "declared by the submitter (model.yaml training.saw_evaluation_split)"
    train_split = (card or {}).get("train_split")
    if isinstance(train_split, dict) and isinstance(train_split.get("name"), str) and isinstance(card, dict):
        name = train_split["name"]
        return name == split, f"the encoder's training card: trained on {card.get('task')}'s '{name}' split"
    if not trained:
        return False, "untrained: the encoder's random initialisation"
    return None, "not recorded: the encoder's weights carry no training record"
