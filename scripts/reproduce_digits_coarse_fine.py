"""Coarse-trained vs fine-trained vs random-init digits CNNs on digits-5 (3 seeds each).

Trains each encoder with `subclassbench.training.trainer.train` (epochs 0 = the seeded
random initialisation), scores every layer with protocol v1 clusterability,
and prints per-layer AMI (mean ± std over seeds) and fine-label recovery.
Run: python scripts/reproduce_digits_coarse_fine.py [--out runs/digits]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tabulate import tabulate

from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.tasks.task import load_task
from subclassbench.training.trainer import Recipe, train

CONDITIONS = {"superclass": ("superclass", 30), "subclass": ("subclass", 30), "random-init": ("superclass", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/digits"))
    parser.add_argument("--arch", default="digits_cnn")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    task = load_task("digits-5")
    curves: dict[str, list[list[float]]] = {}
    fine: dict[str, list[float]] = {}
    names: list[str] = []
    for condition, (labels, epochs) in CONDITIONS.items():
        for seed in range(args.seeds):
            run = args.out / f"{args.arch}-{condition}-s{seed}"
            recipe = Recipe(epochs=epochs, batch_size=64, lr=0.05, seed=seed)
            train(task, args.arch, labels, run, recipe, progress=False)
            result = evaluate(
                EvaluationRequest(
                    model=f"builtin:{args.arch}", weights=str(run), metrics=["clusterability"], progress=False
                )
            )
            names = [layer["name"] for layer in result["layers"]]
            curves.setdefault(condition, []).append([layer["clusterability"]["ami"] for layer in result["layers"]])
            fine.setdefault(condition, []).append(result["summary"]["last_fine_acc"])
    rows = []
    for condition, runs in curves.items():
        amis = np.asarray(runs)
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(amis.mean(0), amis.std(0), strict=True)]
        recovery = np.asarray(fine[condition])
        rows.append([condition, *cells, f"{recovery.mean():.3f} ± {recovery.std():.3f}"])
    print(f"{args.arch} on digits-5, protocol v1 clusterability, {args.seeds} seeds (mean ± std)")
    print(
        tabulate(
            rows,
            headers=["encoder", *[f"AMI {n}" for n in names], "fine-label recovery (last layer)"],
            tablefmt="github",
        )
    )


if __name__ == "__main__":
    main()
