"""Transferability, protocol v1: per-layer linear probes in and out of distribution.

For every layer (Harun et al. 2024; the tunnel effect of Masarczyk et al. 2023):

* **ID** — a probe learns superclass labels on the source subclasses of the
  ID train split and is scored on the source subclasses of the ID test split;
* **OOD shift** — the same probe, unchanged, on the target subclasses with the
  same superclass labels (BREEDS-style subpopulation shift);
* **OOD refit** — a probe fit on the target subclasses' own labels (train
  split) and scored on them (OOD split).

Per task: % OOD performance retained and the tunnel start, the Pearson
correlation of the ID and OOD curves, and per layer the ID/OOD alignment and
the numerical and effective rank of the ID training features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.features import LayerFeatures
from subclassbench.metrics import alignment, effective_rank, numerical_rank, ood_curve_summary, singular_values
from subclassbench.probes import ProbeRecipe, fit_probe
from subclassbench.protocol import RANK_MAX_ROWS, RANK_REL_TOL
from subclassbench.tasks import SplitData, Task


@dataclass
class ProbeSet:
    """Rows of one split's feature matrix and their labels."""

    split: str
    rows: np.ndarray
    labels: np.ndarray

    def take(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return features[self.split][self.rows]


@dataclass
class TransferPlan:
    """Which feature rows each probe trains on and is scored on."""

    id_train: ProbeSet
    id_test: ProbeSet
    ood_shift: ProbeSet
    refit_train: ProbeSet | None
    refit_test: ProbeSet | None
    n_superclasses: int
    n_refit_classes: int

    @staticmethod
    def splits_needed(task: Task) -> list[str]:
        spec = task.transfer
        assert spec is not None
        return list(dict.fromkeys([spec.id_train_split, spec.id_test_split, spec.ood_split]))

    @classmethod
    def from_task(cls, task: Task, splits: dict[str, SplitData]) -> TransferPlan:
        spec = task.transfer
        assert spec is not None

        def probe_set(split: str, members: tuple[Any, ...], labels: str) -> ProbeSet:
            data = splits[split]
            rows = np.flatnonzero(np.isin(data.images.labels, np.asarray(members, dtype=data.images.labels.dtype)))
            if len(rows) == 0:
                raise SubclassbenchError(
                    f"task '{task.name}': split '{split}' has no samples of transfer subclasses {list(members)[:4]}; "
                    "fix the task's transfer block"
                )
            if labels == "superclass":
                return ProbeSet(split, rows, data.superclass[rows])
            index = {label: i for i, label in enumerate(members)}
            return ProbeSet(split, rows, np.asarray([index[v] for v in data.images.labels[rows].tolist()]))

        refit = spec.refit == "target_fine"
        return cls(
            id_train=probe_set(spec.id_train_split, spec.source, "superclass"),
            id_test=probe_set(spec.id_test_split, spec.source, "superclass"),
            ood_shift=probe_set(spec.ood_split, spec.target, "superclass"),
            refit_train=probe_set(spec.id_train_split, spec.target, "own") if refit else None,
            refit_test=probe_set(spec.ood_split, spec.target, "own") if refit else None,
            n_superclasses=len(task.superclasses),
            n_refit_classes=len(spec.target),
        )


def _rank_rows(n: int) -> np.ndarray:
    if n <= RANK_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.RandomState(0).choice(n, RANK_MAX_ROWS, replace=False))


def score_layer_transfer(features: dict[str, np.ndarray], plan: TransferPlan, recipe: ProbeRecipe) -> dict[str, Any]:
    """Probe accuracies, alignment and ranks for one layer (``features``: split name → N × D)."""
    chance_id = 1.0 / plan.n_superclasses
    id_features = plan.id_train.take(features)
    scores = fit_probe(
        id_features,
        plan.id_train.labels,
        {
            "id": (plan.id_test.take(features), plan.id_test.labels),
            "ood_shift": (plan.ood_shift.take(features), plan.ood_shift.labels),
        },
        plan.n_superclasses,
        recipe,
    )
    out: dict[str, Any] = {
        "id_acc": scores["id"].best,
        "ood_shift_acc": scores["ood_shift"].best,
        "ood_refit_acc": None,
        "id_acc_final": scores["id"].final,
        "ood_shift_acc_final": scores["ood_shift"].final,
        "ood_refit_acc_final": None,
    }
    out["alignment_shift"] = alignment(out["id_acc"], out["ood_shift_acc"], chance_id, chance_id)
    out["alignment_refit"] = None
    if plan.refit_train is not None and plan.refit_test is not None:
        refit = fit_probe(
            plan.refit_train.take(features),
            plan.refit_train.labels,
            {"refit": (plan.refit_test.take(features), plan.refit_test.labels)},
            plan.n_refit_classes,
            recipe,
        )["refit"]
        out["ood_refit_acc"], out["ood_refit_acc_final"] = refit.best, refit.final
        out["alignment_refit"] = alignment(out["id_acc"], refit.best, chance_id, 1.0 / plan.n_refit_classes)
    rank_features = id_features[_rank_rows(len(id_features))]
    s = singular_values(rank_features)  # one SVD serves both ranks
    out["numerical_rank"] = numerical_rank(rank_features, RANK_REL_TOL, s=s)
    out["effective_rank"] = effective_rank(rank_features, s=s)
    return out


def score_transfer(
    features: dict[str, list[LayerFeatures]],
    plan: TransferPlan,
    recipe: ProbeRecipe | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Per-layer transfer scores; ``features`` maps split name → layers (same order in every split)."""
    from tqdm.auto import tqdm

    recipe = recipe or ProbeRecipe()
    splits = list(features)
    n_layers = len(features[splits[0]])
    bar = tqdm(range(n_layers), desc="probe layers", unit="layer", disable=not progress or None, leave=False)
    return [score_layer_transfer({s: features[s][i].features for s in splits}, plan, recipe) for i in bar]


def summarize_transfer(names: list[str], per_layer: list[dict[str, Any]], plan: TransferPlan) -> dict[str, Any]:
    """Task-level summary: r, tunnel start and ID/OOD correlation, for each OOD kind.

    The headline ``ood_retained`` / ``tunnel_start`` / ``pearson_id_ood`` use
    the refit curve when present (Harun et al. measure OOD with probes fit on
    the OOD data), else the shift curve; ``ood_basis`` says which.
    """
    id_curve = [layer["id_acc"] for layer in per_layer]
    kinds: dict[str, Any] = {}
    for kind in ("ood_shift", "ood_refit"):
        curve = [layer[f"{kind}_acc"] for layer in per_layer]
        if any(v is None for v in curve):
            continue
        kinds[kind] = ood_curve_summary(names, id_curve, curve)
    basis = "ood_refit" if "ood_refit" in kinds else "ood_shift"
    return {
        "ood_basis": basis,
        "ood_retained": kinds[basis]["ood_retained"],
        "tunnel_start": kinds[basis]["tunnel_start"],
        "pearson_id_ood": kinds[basis]["pearson_id_ood"],
        "penultimate_layer": names[-1],
        "best_id_layer": names[int(np.argmax(id_curve))],
        "best_id_acc": max(id_curve),
        "chance_id": 1.0 / plan.n_superclasses,
        "chance_refit": 1.0 / plan.n_refit_classes if plan.refit_train is not None else None,
        "n_id_train": len(plan.id_train.rows),
        "n_id_test": len(plan.id_test.rows),
        "n_ood": len(plan.ood_shift.rows),
        **{kind: value for kind, value in kinds.items()},
    }
