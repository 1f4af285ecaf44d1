"""Recorded variants: a claim's numbers recomputed the way its source computed them, where the protocol departs.

Nguyen & Kornblith (2023) cluster each layer's **flattened** feature maps **as they are**; the protocol pools each
map globally and L2-normalises it first (docs/protocol.md §2, §3.1, §5). The normalisation claim's answer depends
on that choice, so its report shows the variant beside the protocol's numbers: every layer of each trained run
scored both ways, with the protocol's k-means (k = subclasses within each true superclass, 10 restarts, 100
iterations, seed 0) and the mean AMI over superclasses. A variant is shown, never judged: the verdict stays the
protocol's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.encoders.base import load_encoder
from subclassbench.metrics.clustering import kmeans_fit, l2_normalize
from subclassbench.tasks.task import load_task

POOLED = "pooled, L2-normalised (protocol)"
FLATTENED = "flattened, as they are (Nguyen & Kornblith)"
VARIANTS = (POOLED, FLATTENED)


@dataclass(frozen=True)
class LayerCurve:
    """One run's AMI per layer under one variant, and where it peaks."""

    layers: list[str]
    ami: list[float]

    @property
    def best(self) -> int:
        return int(np.argmax(self.ami))  # the shallowest of ties

    @property
    def best_layer(self) -> str:
        return self.layers[self.best]

    @property
    def best_depth(self) -> float:
        """Relative depth of the best layer, 0 (stem) to 1 (embedding), as the protocol's ``best_depth`` (1 for a
        lone layer: raw pixels have only their embedding)."""
        return self.best / (len(self.layers) - 1) if len(self.layers) > 1 else 1.0


def layer_outputs(folder: Path) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every named layer's raw output (N × …) on the run's task's evaluation split, in layer order, with labels."""
    card = json.loads((folder / "card.json").read_text())
    task = load_task(card["task"])
    split = task.load_split(task.evaluation_split, None, primary=False)
    images = split.images.load(np.arange(len(split)))
    encoder = load_encoder(f"builtin:{card['arch']}", weights=folder, sample_shape=split.images.sample_shape)
    grabbed: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: grabbed.__setitem__(name, out.detach()))
        for name, module in encoder.layer_modules.items()
    ]
    encoder.model.eval()
    try:
        with torch.inference_mode():
            embedding = encoder.embed(encoder.preprocessing(torch.as_tensor(images)))
    finally:
        for hook in hooks:
            hook.remove()
    names = [*encoder.layer_modules, "embedding"]
    grabbed["embedding"] = embedding
    return names, {n: grabbed[n].float().numpy() for n in names}, split.superclass, split.subclass


def mean_ami(x: np.ndarray, superclass: np.ndarray, subclass: np.ndarray) -> float:
    """The protocol's k-means within each true superclass, mean AMI over superclasses."""
    amis = []
    for s in np.unique(superclass):
        rows = superclass == s
        k = len(np.unique(subclass[rows]))
        _, labels = kmeans_fit(x[rows], k, n_init=10, max_iter=100, seed=0)
        amis.append(adjusted_mutual_info_score(subclass[rows], labels))
    return float(np.mean(amis))


def features(raw: np.ndarray, variant: str) -> np.ndarray:
    """One layer's output as the variant clusters it."""
    if variant == POOLED:
        pooled = raw.mean(axis=(2, 3)) if raw.ndim == 4 else raw.reshape(len(raw), -1)
        return l2_normalize(pooled)
    return raw.reshape(len(raw), -1)


def curves(folder: Path) -> dict[str, LayerCurve]:
    """A trained run's AMI per layer under each variant."""
    names, outputs, superclass, subclass = layer_outputs(folder)
    return {
        variant: LayerCurve(names, [mean_ami(features(outputs[n], variant), superclass, subclass) for n in names])
        for variant in VARIANTS
    }
