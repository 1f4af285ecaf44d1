"""Pliushch et al. (ECCV 2022): networks of different seeds and architectures agree on which images they learn
first, beyond what their accuracies imply, in an order that follows image statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.reproductions.claims.common import (
    DIGITS_RECIPE,
    ON_DIGITS,
    SMOKE_RECIPE,
    register,
)
from subclassbench.reproductions.plan import Claim, Condition, Plan, datasets_of, with_controls
from subclassbench.reproductions.report import Findings, Table
from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    combine,
    image_statistics,
    learned_at,
    spearman,
)


def _agreement_plan(
    scale: str,
    task: str,
    archs: tuple[str, ...],
    recipe: tuple[tuple[str, Any], ...],
    shortened: str,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> Plan:
    conditions = tuple(Condition(arch, task, arch, "subclass", metrics=None) for arch in archs)
    plan = Plan(scale, conditions, seeds, recipe, shortened)
    # Only the permuted-labels control: the claim reads training logs, which an untrained network and raw
    # pixels do not have.
    return with_controls(plan, archs, ("permuted labels",))


def _train_images(plan: Plan, runs: Any, ids: list[str]) -> np.ndarray:
    from subclassbench.tasks.datasources import EncodedBatch
    from subclassbench.tasks.task import load_task

    task = plan.conditions[0].task
    split = load_task(task).load_split("train", runs.data.get(datasets_of(task) or ""), primary=False)
    position = {str(i): n for n, i in enumerate(split.images.ids)}
    index = np.array([position[i] for i in ids])
    images = split.images.load(index)
    if isinstance(images, EncodedBatch):  # the claim's image statistics read pixels; its tasks ship them decoded
        raise SubclassbenchError(f"task '{task}': the image statistics need decoded images, not encoded files")
    return images.numpy()


def _train_log(folder: Any) -> np.ndarray:
    """A run's per-epoch correctness on its train split (protocol v2 training records it)."""
    from subclassbench.training.trainer import load_train_correctness

    log = load_train_correctness(folder)
    if log is None:
        raise SubclassbenchError(f"{folder} has no train-split correctness log; re-run its training")
    return log


def _excess(part: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(agreement − independent networks' agreement, the independent agreement, the informative epochs) of one
    group's agreement record. Informative: the baseline is neither ~0 nor ~1 — at ~1 agreement cannot exceed it,
    and at ~0 (the first epochs, most images wrong for some network) both count a handful of images, too few to
    read."""
    independent = np.asarray(part["agreement_if_independent"])
    informative = (independent > 1e-3) & (independent < 1 - 1e-3)
    return np.asarray(part["agreement"]) - independent, independent, informative


def _mean_excess(excess: np.ndarray, informative: np.ndarray) -> float:
    return float(np.mean(excess[informative])) if informative.any() else 0.0


def _learning_order(folders: list[Any]) -> np.ndarray:
    """Per training image, the mean over runs of the epoch it is learned at (from the runs' train logs)."""
    order: np.ndarray = np.mean([learned_at(_train_log(f)) for f in folders], axis=0)
    return order


def _control_measures(
    plan: Plan, runs: Any, archs: list[str], image_stats: dict[str, np.ndarray]
) -> dict[str, Any] | None:
    """The verdict's three numbers for the permuted-labels networks: mean excess agreement over independence
    (all architectures), learning-order ρ per pair, the strongest |ρ| with an image statistic; None without them."""
    from subclassbench.compare.representations import agreement_over_runs

    groups = {a: [r.folder for r in runs.control(a, "permuted labels")] for a in archs}
    if not all(groups.values()):
        return None
    doc = agreement_over_runs([f for folders in groups.values() for f in folders])
    excess, _, informative = _excess(doc["train"] or doc)
    orders = {a: _learning_order(folders) for a, folders in groups.items()}
    rhos = [spearman(orders[a], orders[b]) or 0.0 for i, a in enumerate(archs) for b in archs[i + 1 :]]
    mean_order = np.mean(list(orders.values()), axis=0)
    stat = [abs(r) for r in (spearman(mean_order, v) for v in image_stats.values()) if r is not None]
    return {
        "excess_all": _mean_excess(excess, informative),
        "order_rhos": rhos,
        "strongest": max(stat, default=0.0),
    }


def _analyse_agreement(plan: Plan, runs: Any) -> Findings:
    from subclassbench.compare.representations import agreement_over_runs
    from subclassbench.figures.drawing import agreement_files

    archs = [c.name for c in plan.conditions]
    rows: list[list[str]] = []
    numbers: dict[str, Any] = {}
    orders: dict[str, np.ndarray] = {}
    docs: dict[str, Any] = {}
    above, excess_all = [], 0.0
    for group, folders in [
        *((a, [r.folder for r in runs.of(a)]) for a in archs),
        ("all architectures", [r.folder for a in archs for r in runs.of(a)]),
    ]:
        doc = agreement_over_runs(folders)
        docs[group] = doc
        part = doc["train"] or doc
        excess, independent, informative = _excess(part)
        above.append(bool(informative.any() and np.all(excess[informative] > 0)))
        if group == "all architectures":
            excess_all = _mean_excess(excess, informative)
        exceeded = f"{int(np.sum(excess[informative] > 0))}/{int(informative.sum())}"
        rows.append(
            [
                group,
                str(len(folders)),
                f"{part['agreement'][0]:.3f}",
                f"{independent[0]:.3f}",
                f"{part['agreement'][-1]:.3f}",
                f"{independent[-1]:.3f}",
                f"{np.mean(part['accuracy_mean']):.3f}",
                exceeded,
            ]
        )
        numbers[group] = {
            "agreement": part["agreement"],
            "independent": independent.tolist(),
            "all_right_share": part["all_right_share"],
            "accuracy_mean": part["accuracy_mean"],
        }
        if group != "all architectures":  # one architecture's learning order, from its runs' train logs
            orders[group] = _learning_order(folders)
    order_rows, order_rhos = [], []
    for i, a in enumerate(archs):
        for b in archs[i + 1 :]:
            rho = spearman(orders[a], orders[b])
            order_rhos.append(rho if rho is not None else 0.0)
            order_rows.append([f"{a} vs {b}", "—" if rho is None else f"{rho:+.3f}"])
    with np.load(runs.of(archs[0])[0].folder / "correctness.npz", allow_pickle=False) as data:
        ids = [str(i) for i in data["train_ids"]]
    image_stats = image_statistics(_train_images(plan, runs, ids))
    mean_order = np.mean(list(orders.values()), axis=0)
    stat_rows, stat_rhos = [], {}
    for name, values in image_stats.items():
        rho = spearman(mean_order, values)
        stat_rhos[name] = rho
        stat_rows.append([name, "—" if rho is None else f"{rho:+.3f}"])
    numbers["learning_order_spearman"] = dict(zip([r[0] for r in order_rows], order_rhos, strict=True))
    numbers["order_vs_image_statistics"] = stat_rhos
    strongest = max((abs(r) for r in stat_rhos.values() if r is not None), default=0.0)
    # The null: the same architectures fitted to permuted labels (they memorise, in some order, too). Each part
    # must beat what they show; where the plan has no such control, nothing is beaten.
    control = _control_measures(plan, runs, archs, image_stats)
    numbers["permuted_labels_control"] = control
    beats_a = control is not None and excess_all > control["excess_all"]
    beats_b = control is not None and min(order_rhos) > max(control["order_rhos"])
    beats_c = control is not None and strongest > control["strongest"]
    part_a = (REPRODUCED if all(above) else PARTLY if any(above) else NOT_REPRODUCED) if beats_a else NOT_REPRODUCED
    # The report's own thresholds, not "any positive ρ": every pair ρ ≥ 0.5 (some pair: partly); |ρ| ≥ 0.2.
    meets = [r >= 0.5 for r in order_rhos]
    part_b = (REPRODUCED if all(meets) else PARTLY if any(meets) else NOT_REPRODUCED) if beats_b else NOT_REPRODUCED
    part_c = REPRODUCED if strongest >= 0.2 and beats_c else NOT_REPRODUCED
    verdict = combine([part_a, part_b, part_c])
    against = (
        "no permuted-labels control scored"
        if control is None
        else f"permuted-labels control: excess agreement {control['excess_all']:+.3f}, order ρ up to "
        f"{max(control['order_rhos']):+.3f}, strongest image statistic |ρ| {control['strongest']:.3f}"
    )
    why = (
        f"agreement above what independent networks would give at every informative epoch (mean excess "
        f"{excess_all:+.3f}): {part_a}; learning orders agree across architectures (every Spearman ρ ≥ 0.5; "
        f"lowest {min(order_rhos):+.3f}): {part_b}; learning order follows an image statistic (|ρ| ≥ 0.2; "
        f"strongest {strongest:.3f}): {part_c}; each part must also beat the {against}"
    )
    numbers["verdicts"] = {"agreement": part_a, "order_across_architectures": part_b, "image_statistics": part_c}
    tables = [
        Table(
            "Agreement on the train split (all networks right ÷ some network right), against independent networks",
            [
                "networks",
                "runs",
                "agreement, epoch 1",
                "independent, epoch 1",
                "agreement, last epoch",
                "independent, last epoch",
                "mean accuracy over epochs",
                "informative epochs with agreement above independence",
            ],
            rows,
            "Agreement as Pliushch et al. compute it: of the images some network gets right, the share every "
            "network gets right. Networks whose mistakes were independent would agree at Π acc_i / (1 − Π (1 − "
            "acc_i)). Part one of the verdict: agreement above that at every informative epoch (where it lies "
            "between 0.001 and 0.999).",
        ),
        Table(
            "Learning order across architectures (Spearman ρ of the mean epoch each image is learned)",
            ["pair", "ρ"],
            order_rows,
            "An image is learned at the first epoch from which it stays right; never: epochs + 1. Mean over seeds.",
        ),
        Table(
            "Learning order against image statistics (Spearman ρ; negative: learned earlier when higher)",
            ["statistic", "ρ with the mean learning epoch"],
            stat_rows,
            "entropy: grey-level histogram entropy; edges: mean Sobel magnitude; contrast: grey-level std.",
        ),
    ]
    figure = agreement_files(docs["all architectures"])["png"]  # every run, computed once above
    notes = [
        "Agreement is Pliushch et al.'s ratio as their code computes it (agreement v3, docs/compare.md); the "
        "share of all images every network gets right is in the JSON as all_right_share.",
        "Their train-split correctness is what a network predicted during its training pass (augmented inputs, "
        "weights changing within the epoch); ours is an eval pass over the unaugmented train split after each "
        "epoch.",
        "Pliushch et al. follow, per epoch, the mean image statistic (entropy, segment count, edge strength, "
        "frequency content) of the images every network has right; here each image's learning epoch is "
        "rank-correlated with its own statistic, one number per statistic.",
    ]
    return Findings(verdict, why, tables, {"agreement": figure}, numbers, notes)


register(
    Claim(
        "pliushch2022",
        "Pliushch et al. (ECCV 2022)",
        "networks agree on what they learn first",
        "Networks trained from different seeds, and of different architectures, agree on which images they learn "
        "first, beyond what their accuracies alone imply, in an order that follows image statistics.",
        "High agreement from the first epoch across seeds and architectures, well above the independence "
        "baseline; learning order related to image statistics (Pliushch et al. 2022).",
        {
            "paper": _agreement_plan(
                "paper",
                "cifar10-5",
                ("cifar_resnet20", "resnet18_small", "vit_tiny_p4"),
                (("batch_size", 128), ("epochs", 30), ("lr", 0.1)),
                "30 epochs (agreement is read per epoch; convergence is not needed), 5 seeds × 3 "
                "architectures on CIFAR-10's 10 labels (cifar10-5, subclass labels).",
            ),
            "cpu": _agreement_plan(
                "cpu",
                "digits-5",
                ("digits_mlp", "digits_cnn", "cifar_resnet20"),
                DIGITS_RECIPE,
                f"{ON_DIGITS} (10-way: digits-5 with subclass labels), 10 epochs, 5 seeds × 3 architectures.",
            ),
            "smoke": _agreement_plan(
                "smoke",
                "digits-5",
                ("digits_mlp", "digits_cnn"),
                SMOKE_RECIPE,
                f"{ON_DIGITS}, 2 epochs, 3 seeds: a wiring check, not evidence.",
                seeds=(0, 1, 2),
            ),
        },
        _analyse_agreement,
    )
)
