"""Transferability, protocol v2: per-layer linear probes in distribution, under subpopulation shift and OOD.

For every layer:

* **ID**: a probe learns the task's ``id_labels`` on its ID train split and
  is scored on its ID test split;
* **subpopulation shift** (BREEDS-style; Santurkar et al. 2021), when the
  task defines source/target subclasses: the ID probe, unchanged, on the
  target subclasses under their superclass labels, and a probe refit on the
  target subclasses' own labels. Same classes, new subpopulations: this is
  not out of distribution, and it is reported under its own name;
* **OOD sets** (Harun et al. 2024): for each class-disjoint OOD set, a probe
  fit on the set's train split and scored on its test split.

Every probe chooses its epoch on rows held out from its own training data
(``probes.fit_probe``). Per task: the tunnel (the best OOD layer, when it lies
before the penultimate layer and beats it), its strength, % OOD performance
retained, the Pearson correlation of the ID and OOD curves over distinct
layers, and per layer the ID/OOD alignment and the rank of the ID features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.features.extraction import LayerFeatures
from subclassbench.features.matrices import Matrix, Rows
from subclassbench.metrics.layers import alignment, effective_rank, numerical_rank, singular_values, tunnel_summary
from subclassbench.scoring.probes import ProbeFit, ProbeRecipe, fit_probes
from subclassbench.scoring.protocol import RANK_MAX_ROWS, RANK_REL_TOL, TUNNEL_STRENGTH
from subclassbench.tasks.task import SplitData, Task


def ood_key(name: str, split: str) -> str:
    """The features key of an OOD set's split (never a task split name: those cannot hold '/')."""
    return f"ood/{name}/{split}"


def ood_probe(name: str) -> str:
    """The name of an OOD set's probe test set in the per-sample outputs (beside ``id``, ``shift``, ``refit``)."""
    return f"ood/{name}"


@dataclass
class ProbeSet:
    """Rows of one split's feature matrix and their labels."""

    split: str
    rows: np.ndarray
    labels: np.ndarray

    def take_all(self, features: dict[str, list[Matrix]]) -> list[Rows]:
        """This set's rows of every layer, read lazily (a layer at a time, when its probe is stacked)."""
        return [matrix.rows(self.rows) for matrix in features[self.split]]


@dataclass
class OODPlan:
    name: str
    task: str
    train: ProbeSet
    test: ProbeSet
    n_classes: int


@dataclass
class TransferPlan:
    """Which feature rows each probe trains on and is scored on."""

    id_train: ProbeSet
    id_test: ProbeSet
    n_id_classes: int
    id_labels: str
    shift: ProbeSet | None = None
    refit_train: ProbeSet | None = None
    refit_test: ProbeSet | None = None
    n_refit_classes: int = 0
    ood: list[OODPlan] = field(default_factory=list)

    @staticmethod
    def splits_needed(task: Task) -> list[str]:
        spec = task.transfer
        assert spec is not None
        return list(
            dict.fromkeys(
                [
                    spec.id_train_split,
                    spec.id_test_split,
                    *([spec.ood_split] if spec.has_shift and spec.ood_split else []),
                ]
            )
        )

    @classmethod
    def from_task(cls, task: Task, splits: dict[str, SplitData], ood_splits: dict[str, SplitData]) -> TransferPlan:
        """``splits``: the task's own splits by name; ``ood_splits``: OOD sets' splits by :func:`ood_key`."""
        spec = task.transfer
        assert spec is not None

        def probe_set(split: str, members: tuple[Any, ...], labels: str) -> ProbeSet:
            data = splits[split]
            if not members:  # no subpopulation shift: every sample of the split
                rows = np.arange(len(data))
            else:
                rows = np.flatnonzero(np.isin(data.images.labels, np.asarray(members, dtype=data.images.labels.dtype)))
            if len(rows) == 0:
                raise SubclassbenchError(
                    f"task '{task.name}': split '{split}' has no samples of transfer subclasses {list(members)[:4]}; "
                    "fix the task's transfer block"
                )
            if labels == "superclass":
                return ProbeSet(split, rows, data.superclass[rows])
            if labels == "subclass":
                return ProbeSet(split, rows, data.global_subclass[rows])
            index = {label: i for i, label in enumerate(members)}
            return ProbeSet(split, rows, np.asarray([index[v] for v in data.images.labels[rows].tolist()]))

        id_labels = spec.id_labels
        plan = cls(
            id_train=probe_set(spec.id_train_split, spec.source, id_labels),
            id_test=probe_set(spec.id_test_split, spec.source, id_labels),
            n_id_classes=len(task.superclasses) if id_labels == "superclass" else task.n_subclasses,
            id_labels=id_labels,
        )
        if spec.has_shift:
            assert spec.ood_split is not None
            plan.shift = probe_set(spec.ood_split, spec.target, "superclass")
            if spec.refit == "target_fine":
                plan.refit_train = probe_set(spec.id_train_split, spec.target, "own")
                plan.refit_test = probe_set(spec.ood_split, spec.target, "own")
                plan.n_refit_classes = len(spec.target)
        for ood in spec.ood_sets:
            keys = ood_key(ood.name, ood.train_split), ood_key(ood.name, ood.test_split)
            if keys[0] not in ood_splits or keys[1] not in ood_splits:
                continue  # not loaded (data absent, with a note): the set is left out, never faked
            train, test = ood_splits[keys[0]], ood_splits[keys[1]]
            plan.ood.append(
                OODPlan(
                    name=ood.name,
                    task=ood.task,
                    train=ProbeSet(keys[0], np.arange(len(train)), train.global_subclass),
                    test=ProbeSet(keys[1], np.arange(len(test)), test.global_subclass),
                    n_classes=train.task.n_subclasses,
                )
            )
        return plan

    def test_sets(self) -> dict[str, ProbeSet]:
        """Every probe's scored set, by its name in the per-sample outputs (``LayerTransfer.predictions``)."""
        sets = {"id": self.id_test, **{ood_probe(o.name): o.test for o in self.ood}}
        if self.shift is not None:
            sets["shift"] = self.shift
        if self.refit_test is not None:
            sets["refit"] = self.refit_test
        return sets


def _fit_on(
    features: dict[str, list[Matrix]],
    train: ProbeSet,
    test: ProbeSet,
    n_classes: int,
    recipe: ProbeRecipe,
    device: str,
) -> list[ProbeFit]:
    """Every layer's probe fit on ``train`` and scored on ``test`` (key ``test``, with its predictions)."""
    return fit_probes(
        train.take_all(features), train.labels, {"test": (test.take_all(features), test.labels)}, n_classes,
        recipe, predict=("test",), device=device,
    )  # fmt: skip


def _rank_rows(n: int) -> np.ndarray:
    if n <= RANK_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.RandomState(0).choice(n, RANK_MAX_ROWS, replace=False))


@dataclass
class LayerTransfer:
    """One layer's transfer scores and each probe's per-image predictions on its test set.

    ``predictions`` keys: ``id``, ``shift``, ``refit`` and ``ood/<name>``, as in the per-sample file."""

    scores: dict[str, Any]
    predictions: dict[str, np.ndarray]


def score_layers_transfer(
    features: dict[str, list[Matrix]],
    plan: TransferPlan,
    recipe: ProbeRecipe,
    device: str = "cpu",
    progress: bool = False,
) -> list[LayerTransfer]:
    """Probe accuracies, alignment and ranks for every layer (``features``: split key → per-layer N × D).

    Each probe kind (ID, refit, each OOD set) trains all layers' probes in one batched program."""
    from subclassbench.core.progress import bar as progress_bar

    kinds = 1 + (plan.refit_train is not None) + len(plan.ood)
    bar = progress_bar(kinds, "probes", "kind", progress)
    chance_id = 1.0 / plan.n_id_classes
    id_features = plan.id_train.take_all(features)
    evaluations = {"id": (plan.id_test.take_all(features), plan.id_test.labels)}
    if plan.shift is not None:
        evaluations["shift"] = (plan.shift.take_all(features), plan.shift.labels)
    id_fits = fit_probes(
        id_features, plan.id_train.labels, evaluations, plan.n_id_classes, recipe, tuple(evaluations), device
    )
    bar.update()
    refit_fits = None
    if plan.refit_train is not None and plan.refit_test is not None:
        refit_fits = _fit_on(features, plan.refit_train, plan.refit_test, plan.n_refit_classes, recipe, device)
        bar.update()
    ood_fits = {}
    for entry in plan.ood:
        ood_fits[entry.name] = _fit_on(features, entry.train, entry.test, entry.n_classes, recipe, device)
        bar.update()
    bar.close()
    out = []
    for i, fit in enumerate(id_fits):
        predictions = dict(fit.predictions)
        scores: dict[str, Any] = {
            "id_acc": fit.scores["id"].acc,
            "id_acc_final": fit.scores["id"].final,
            "id_epoch": fit.selected_epoch,
            "subpop_shift_acc": None,
            "subpop_shift_acc_final": None,
            "subpop_refit_acc": None,
            "subpop_refit_acc_final": None,
            "alignment_subpop_shift": None,
            "alignment_subpop_refit": None,
        }
        if plan.shift is not None:
            scores["subpop_shift_acc"], scores["subpop_shift_acc_final"] = (
                fit.scores["shift"].acc, fit.scores["shift"].final
            )  # fmt: skip
            scores["alignment_subpop_shift"] = alignment(
                scores["id_acc"], scores["subpop_shift_acc"], chance_id, chance_id
            )
        if refit_fits is not None:
            refit, predictions["refit"] = refit_fits[i].scores["test"], refit_fits[i].predictions["test"]
            scores["subpop_refit_acc"], scores["subpop_refit_acc_final"] = refit.acc, refit.final
            scores["alignment_subpop_refit"] = alignment(
                scores["id_acc"], refit.acc, chance_id, 1.0 / plan.n_refit_classes
            )
        ood: dict[str, Any] = {}
        for entry in plan.ood:
            set_fit = ood_fits[entry.name][i]
            predictions[ood_probe(entry.name)] = set_fit.predictions["test"]
            acc = set_fit.scores["test"].acc
            ood[entry.name] = {
                "acc": acc,
                "acc_final": set_fit.scores["test"].final,
                "epoch": set_fit.selected_epoch,
                "alignment": alignment(scores["id_acc"], acc, chance_id, 1.0 / entry.n_classes),
            }
        scores["ood"] = ood
        scores["ood_mean_acc"] = float(np.mean([v["acc"] for v in ood.values()])) if ood else None
        rank_features = np.asarray(id_features[i].select(_rank_rows(len(id_features[i]))))
        s = singular_values(rank_features)  # one SVD serves both ranks
        scores["numerical_rank"] = numerical_rank(rank_features, RANK_REL_TOL, s=s)
        scores["effective_rank"] = effective_rank(rank_features, s=s)
        out.append(LayerTransfer(scores, predictions))
    return out


def distinct_layers(layers: list[LayerFeatures], plan: TransferPlan) -> list[bool]:
    """False for a layer whose ID-train features equal the next layer's (e.g. a pooled last block that *is*
    the embedding): such a pair is one point of the curve, counted once, at the later layer."""
    rows = plan.id_train.rows
    out = []
    for i, layer in enumerate(layers):
        out.append(i + 1 == len(layers) or not _same_rows(layer.rows(rows), layers[i + 1].rows(rows)))
    return out


def _same_rows(a: Rows, b: Rows) -> bool:
    """Equal matrices, compared a block of rows at a time (equal widths give equal blocks)."""
    return a.shape == b.shape and all(np.array_equal(x, y) for x, y in zip(a.blocks(), b.blocks(), strict=True))


def score_transfer(
    features: dict[str, list[LayerFeatures]],
    plan: TransferPlan,
    recipe: ProbeRecipe | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> list[LayerTransfer]:
    """Per-layer transfer scores; ``features`` maps split key → layers (same order in every split)."""
    recipe = recipe or ProbeRecipe()
    matrices = {k: [layer.matrix for layer in layers] for k, layers in features.items()}
    distinct = distinct_layers(features[plan.id_train.split], plan)
    out = score_layers_transfer(matrices, plan, recipe, device, progress)
    for layer, is_distinct in zip(out, distinct, strict=True):
        layer.scores["same_as_next"] = not is_distinct
    return out


def strength(retained: float) -> str:
    """Harun et al. (2024)'s tunnel-strength class of a % retained."""
    return next(name for low, name in TUNNEL_STRENGTH if retained >= low)


def summarize_transfer(names: list[str], per_layer: list[dict[str, Any]], plan: TransferPlan) -> dict[str, Any]:
    """Task-level summary: the tunnel on the mean OOD curve, each OOD set, and the subpopulation shift."""
    distinct = [not layer["same_as_next"] for layer in per_layer]
    id_curve = [layer["id_acc"] for layer in per_layer]
    out: dict[str, Any] = {
        "id_labels": plan.id_labels,
        "penultimate_layer": names[-1],
        "distinct_layers": [n for n, d in zip(names, distinct, strict=True) if d],
        "best_id_layer": names[int(np.argmax(id_curve))],
        "best_id_acc": max(id_curve),
        "chance_id": 1.0 / plan.n_id_classes,
        "n_id_train": len(plan.id_train.rows),
        "n_id_test": len(plan.id_test.rows),
        "ood_sets": [],
        "ood_retained": None,
        "tunnel": None,
        "pearson_id_ood": None,
    }
    for entry in plan.ood:
        curve = [layer["ood"][entry.name]["acc"] for layer in per_layer]
        detail = tunnel_summary(names, id_curve, curve, distinct)
        out["ood_sets"].append(
            {
                "name": entry.name,
                "task": entry.task,
                "n_train": len(entry.train.rows),
                "n_test": len(entry.test.rows),
                "chance": 1.0 / entry.n_classes,
                **detail,
                "tunnel": tunnel_record(detail),
                "flat": flat_curve(curve, 1.0 / entry.n_classes, len(entry.test.rows)),
            }
        )
    if plan.ood:
        mean_curve = [layer["ood_mean_acc"] for layer in per_layer]
        detail = tunnel_summary(names, id_curve, mean_curve, distinct)
        # Harun et al. (2024) average each OOD set's % retained (a mean of ratios); the mean curve's ratio of means
        # (protocol v2's headline) is kept beside it. The two differ once a task has more than one OOD set.
        out["ood_retained"] = float(np.mean([s["ood_retained"] for s in out["ood_sets"]]))
        out["ood_retained_mean_curve"] = detail["ood_retained"]
        out["tunnel"] = tunnel_record(detail)
        out["pearson_id_ood"] = detail["pearson_id_ood"]
        out["ood_curve"] = {k: v for k, v in detail.items() if k != "ood_retained"}
        out["flat_ood_curve"] = all(s["flat"] for s in out["ood_sets"])
    out["subpopulation_shift"] = _shift_summary(names, id_curve, per_layer, plan, distinct)
    return out


def tunnel_record(detail: dict[str, Any]) -> dict[str, str] | None:
    """A :func:`~subclassbench.metrics.layers.tunnel_summary` as a result stores it: null, or its start and strength."""
    if not detail["tunnel"]:
        return None
    return {"start": detail["best_layer"], "strength": strength(detail["ood_retained"])}


def _shift_summary(
    names: list[str], id_curve: list[float], per_layer: list[dict[str, Any]], plan: TransferPlan, distinct: list[bool]
) -> dict[str, Any] | None:
    if plan.shift is None:
        return None
    out: dict[str, Any] = {"n_shift": len(plan.shift.rows), "chance_refit": None}
    for kind in ("subpop_shift", "subpop_refit"):
        curve = [layer[f"{kind}_acc"] for layer in per_layer]
        if any(v is None for v in curve):
            continue
        detail = tunnel_summary(names, id_curve, curve, distinct)
        out[kind] = {"retained": detail.pop("ood_retained"), **{k: v for k, v in detail.items() if k != "tunnel"}}
    if plan.refit_train is not None:
        out["chance_refit"] = 1.0 / plan.n_refit_classes
    return out


def flat_curve(curve: list[float], chance: float, n_test: int) -> bool:
    """An OOD accuracy curve that says nothing about depth: the same at every layer, or never above chance
    (each up to one sample's worth). % retained is then 100 by construction, not by merit."""
    margin = 1.0 / max(n_test, 1)
    return max(curve) - min(curve) <= margin or max(curve) <= chance + margin
