"""Nguyen & Kornblith's clustering beside the protocol's, on trained run folders: where does each put the best layer?

The protocol pools each CNN map globally and L2-normalises before k-means (docs/protocol.md §2, §3.1); Nguyen &
Kornblith cluster the flattened feature maps as they are. This script scores every layer of each run both ways,
with the protocol's k-means (faiss, k = subclasses within each true superclass, 10 restarts, 100 iterations,
seed 0) and the mean AMI over superclasses, and prints the best layer and its relative depth per run and
variant. It measures a departure (protocol §5); it is not a protocol metric.

    python scripts/nguyen_variant.py RUN_FOLDER [RUN_FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.encoders.base import load_encoder
from subclassbench.metrics.clustering import kmeans_fit, l2_normalize
from subclassbench.tasks.task import load_task

VARIANTS = ("pooled, L2-normalised (protocol)", "flattened, as they are (Nguyen & Kornblith)")


def layer_outputs(folder: Path) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every named layer's raw output (N × …) on the task's evaluation split, in layer order, with the labels."""
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
    with torch.inference_mode():
        embedding = encoder.embed(encoder.preprocessing(torch.as_tensor(images)))
    for hook in hooks:
        hook.remove()
    names = [*encoder.layer_modules, "embedding"]
    grabbed["embedding"] = embedding
    return names, {n: grabbed[n].float().numpy() for n in names}, split.superclass, split.subclass


def mean_ami(x: np.ndarray, superclass: np.ndarray, subclass: np.ndarray) -> float:
    amis = []
    for s in np.unique(superclass):
        rows = superclass == s
        k = len(np.unique(subclass[rows]))
        _, labels = kmeans_fit(x[rows], k, n_init=10, max_iter=100, seed=0)
        amis.append(adjusted_mutual_info_score(subclass[rows], labels))
    return float(np.mean(amis))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| run | variant | AMI per layer | best layer (depth) |")
    print("|---|---|---|---|")
    for folder in args.runs:
        names, outputs, superclass, subclass = layer_outputs(folder)
        for variant in VARIANTS:
            amis = []
            for name in names:
                raw = outputs[name]
                if variant.startswith("pooled"):
                    pooled = raw.mean(axis=(2, 3)) if raw.ndim == 4 else raw.reshape(len(raw), -1)
                    x = l2_normalize(pooled)
                else:
                    x = raw.reshape(len(raw), -1)
                amis.append(mean_ami(x, superclass, subclass))
            best = int(np.argmax(amis))
            depth = best / (len(names) - 1)
            curve = ", ".join(f"{a:.3f}" for a in amis)
            print(f"| {folder.name} | {variant} | {curve} | {names[best]} ({depth:.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
