"""The six findings subclassbench standardises, each as a plan per scale and an analysis of its runs.

Every analysis reads numbers the benchmark itself produced (result files scored under the protocol,
training cards and correctness logs), reports them per seed with the result's bootstrap interval and
across seeds as mean ± std with a t-interval, and decides a verdict by a rule written here, next to the
numbers it reads. The paper's figure is quoted beside ours; where this benchmark measures a quantity
differently from the paper (docs/protocol.md §5), the report says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.reproductions.claims.common import (
    CIFAR_PAPER_RECIPE,
    DIGITS_RECIPE,
    ON_DIGITS,
    SMOKE_RECIPE,
    curves_png,
    register,
    seed_cells,
    seed_values,
)
from subclassbench.reproductions.plan import Claim, Condition, Plan, datasets_of
from subclassbench.reproductions.report import Findings, Table
from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    combine,
    direction_verdict,
    image_statistics,
    learned_at,
    paired,
    seed_summary,
    spearman,
)

# isort: off
# Import order is registration order: list(CLAIMS), the CLI's help and the reports' index follow it.
from subclassbench.reproductions.claims import (
    yang2023,
    yang2023_schedule,
    nguyen2023_shuffled,
    nguyen2023_architecture,
)

# isort: on
from subclassbench.reproductions.claims.common import CLAIMS
from subclassbench.reproductions.claims.nguyen2023_shuffled import SHUFFLED_PAIRS, UNTRAINED
from subclassbench.reproductions.claims.yang2023_schedule import schedule_arm

# --------------------------------------------------------------------------- 4. Harun et al. 2024: the tunnel


def _layer_ood(layer: dict[str, Any]) -> float | None:
    return (layer.get("transfer") or {}).get("ood_mean_acc")


def _tunnel_plan(scale: str, task: str, arch: str, recipe: tuple[tuple[str, Any], ...], shortened: str) -> Plan:
    transfer = ("transfer",)
    conditions = (
        Condition(
            "augmented, 5 ID classes", task, arch, "subclass", recipe=(("augment", "crop_flip"),), metrics=transfer
        ),
        Condition(
            "no augmentation, 5 ID classes", task, arch, "subclass", recipe=(("augment", "none"),), metrics=transfer
        ),
        Condition(
            "augmented, 2 ID classes", task, arch, "superclass", recipe=(("augment", "crop_flip"),), metrics=transfer
        ),
    )
    return Plan(scale, conditions, (0, 1, 2), recipe, shortened)


def _analyse_tunnel(plan: Plan, runs: Any) -> Findings:
    names = [c.name for c in plan.conditions]
    arms = {name: runs.results(name) for name in names}
    retained = {name: seed_values(results, "ood_retained") for name, results in arms.items()}
    rows, numbers = [], {}
    for name, results in arms.items():
        strengths = [(r.summary.get("tunnel") or {}).get("strength", "none") for r in results]
        rows.append(
            [
                name,
                seed_summary(retained[name]).text(".1f"),
                seed_cells(results, "ood_retained", ".1f"),
                ", ".join(strengths),
            ]
        )
        numbers[name] = {"ood_retained": seed_summary(retained[name]).to_dict(), "tunnel": strengths}
    comparisons = [
        ("augmentation", names[0], names[1], "64.26 → 78.41 % retained (augmentation on)"),
        ("more ID classes", names[0], names[2], "35.81 → 73.42 % retained (CIFAR-10 → CIFAR-100 as ID)"),
    ]
    test_rows, verdicts = [], []
    for label, more, fewer, paper in comparisons:
        diff = paired(retained[more], retained[fewer])
        verdict, why = direction_verdict(diff.difference, +1)
        if max(retained[fewer]) >= 95 and max(retained[more]) >= 95:
            verdict, why = NOT_REPRODUCED, "no tunnel formed in either arm (≥ 95 % retained on every seed)"
        verdicts.append(verdict)
        test_rows.append([label, f"{more} − {fewer}", paper, diff.text("+.1f"), verdict])
        numbers[label] = {"difference": diff.to_dict(), "verdict": verdict, "why": why}
    verdict = combine(verdicts)
    why = f"augmentation: {verdicts[0]}; more ID classes: {verdicts[1]} (% OOD retained, paired by seed)"
    tables = [
        Table(
            "% OOD performance retained at the penultimate layer (class-disjoint OOD set)",
            ["arm", "% retained", "per seed [95% bootstrap interval]", "tunnel strength per seed"],
            rows,
            "% retained = 100 · OOD probe accuracy at the penultimate layer ÷ at the best layer (protocol §4.3).",
        ),
        Table(
            "The two variables (paired by seed; Wilcoxon signed-rank and Cliff's δ, as Harun et al.)",
            ["variable", "difference", "paper", "ours", "verdict"],
            test_rows,
            "With 3 seeds the smallest two-sided exact Wilcoxon p is 0.25: the test cannot reject at 3 seeds; "
            "the verdict rule (every seed in the paper's direction, t-interval excluding 0) is stated beside it.",
        ),
    ]
    figure = curves_png(
        arms,
        _layer_ood,
        "OOD probe accuracy per layer (Harun et al. 2024)",
        "OOD linear-probe accuracy (mean over OOD sets)",
    )
    notes = [
        "Harun et al. compare 10 vs 100 ID classes (CIFAR-10 vs CIFAR-100); offline, the class-disjoint CIFAR "
        "split has 5 ID classes, so 'more ID classes' is 5 (subclass labels) vs 2 (superclass labels) on the "
        "same images.",
    ]
    return Findings(verdict, why, tables, {"ood-per-layer": figure}, numbers, notes)


# --------------------------------------------------------------------------- 5. Pliushch et al. 2022: agreement


def _agreement_plan(
    scale: str,
    task: str,
    archs: tuple[str, ...],
    recipe: tuple[tuple[str, Any], ...],
    shortened: str,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> Plan:
    conditions = tuple(Condition(arch, task, arch, "subclass", metrics=None) for arch in archs)
    return Plan(scale, conditions, seeds, recipe, shortened)


def _train_images(plan: Plan, runs: Any, ids: list[str]) -> np.ndarray:
    from subclassbench.tasks.task import load_task

    task = plan.conditions[0].task
    split = load_task(task).load_split("train", runs.data.get(datasets_of(task) or ""), primary=False)
    position = {str(i): n for n, i in enumerate(split.images.ids)}
    index = np.array([position[i] for i in ids])
    return split.images.load(index).numpy()


def _analyse_agreement(plan: Plan, runs: Any) -> Findings:
    from subclassbench.compare.representations import agreement_over_runs
    from subclassbench.figures.drawing import agreement_files
    from subclassbench.training.trainer import load_train_correctness

    archs = [c.name for c in plan.conditions]
    rows, numbers, orders, docs = [], {}, {}, {}
    above = []
    for group, folders in [
        *((a, [r.folder for r in runs.of(a)]) for a in archs),
        ("all architectures", [r.folder for r in runs.records]),
    ]:
        doc = agreement_over_runs(folders)
        docs[group] = doc
        part = doc["train"] or doc
        independent = np.asarray(part["agreement_if_independent"])
        excess = np.asarray(part["agreement"]) - independent
        # Epochs where the baseline is neither ~0 nor ~1: at ~1 agreement cannot exceed it, and at ~0 (the first
        # epochs, most images wrong for some network) both count a handful of images, too few to read.
        informative = (independent > 1e-3) & (independent < 1 - 1e-3)
        above.append(bool(informative.any() and np.all(excess[informative] > 0)))
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
            orders[group] = np.mean([learned_at(load_train_correctness(f)) for f in folders], axis=0)
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
    part_a = REPRODUCED if all(above) else PARTLY if any(above) else NOT_REPRODUCED
    part_b = REPRODUCED if min(order_rhos) >= 0.5 else PARTLY if min(order_rhos) > 0 else NOT_REPRODUCED
    strongest = max((abs(r) for r in stat_rhos.values() if r is not None), default=0.0)
    part_c = REPRODUCED if strongest >= 0.2 else PARTLY if strongest >= 0.1 else NOT_REPRODUCED
    verdict = combine([part_a, part_b, part_c])
    why = (
        f"agreement above what independent networks would give at every informative epoch: {part_a}; learning orders "
        f"agree across architectures (every Spearman ρ ≥ 0.5): {part_b}; learning order follows an image "
        f"statistic (|ρ| ≥ 0.2): {part_c}"
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


# --------------------------------------------------------------------------- 6. Vielhaben et al. 2025: concepts


def _concepts_plan(
    scale: str,
    task: str,
    archs: tuple[str, str],
    recipe: tuple[tuple[str, Any], ...],
    shortened: str,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Plan:
    a, b = archs
    conditions = (
        Condition(a, task, a, metrics=None),
        Condition(b, task, b, metrics=None),
        # The control: the second architecture at its seeded initialisation. Concepts it "shares" come from
        # the images and the architecture's inductive bias, not from training.
        Condition(f"{b} untrained", task, b, recipe=(("epochs", 0),), metrics=None),
    )
    return Plan(scale, conditions, seeds, recipe, shortened)


def _concept_counts(runs: Any, task: str, x: Any, y: Any) -> dict[str, Any]:
    from subclassbench.compare.representations import compare

    doc = compare(
        f"builtin:{x.condition.arch}",
        f"builtin:{y.condition.arch}",
        task,
        str(x.folder),
        str(y.folder),
        data=runs.data.get(datasets_of(task) or ""),
        concepts="nlmcd",
        max_samples=2000,
    )
    c = doc["concepts"]
    counts = {
        "layers": f"{c['layer_a']} / {c['layer_b']}",
        "a": c["a"]["n_concepts"],
        "b": c["b"]["n_concepts"],
        "universal": len(c["universal"]),
        "unique_a": len(c["unique_a"]),
        "unique_b": len(c["unique_b"]),
    }
    counts["universal_share"] = counts["universal"] / max(1, min(counts["a"], counts["b"]))
    return counts


def _analyse_concepts(plan: Plan, runs: Any) -> Findings:
    a_name, b_name, control_name = (c.name for c in plan.conditions)
    task = plan.conditions[0].task
    kinds = {
        "trained": list(zip(runs.of(a_name), runs.of(b_name), strict=True)),
        "control": list(zip(runs.of(a_name), runs.of(control_name), strict=True)),
        "same architecture": list(zip(runs.of(a_name), runs.of(a_name)[1:], strict=False))[:1],
    }
    rows, numbers, shares = [], {}, {kind: [] for kind in kinds}
    both_kinds = []
    for kind, pairs in kinds.items():
        for x, y in pairs:
            label = f"{x.condition.name} s{x.seed} vs {y.condition.name} s{y.seed}"
            counts = _concept_counts(runs, task, x, y)
            shares[kind].append(counts["universal_share"])
            if kind == "trained":
                both_kinds.append(counts["universal"] > 0 and counts["unique_a"] + counts["unique_b"] > 0)
            rows.append(
                [kind, label, counts["layers"]]
                + [str(counts[k]) for k in ("a", "b", "universal", "unique_a", "unique_b")]
                + [f"{counts['universal_share']:.2f}"]
            )
            numbers[label] = {"kind": kind, **counts}
    learned = paired(shares["trained"], shares["control"])
    if all(both_kinds) and learned.difference.mean > 0 and all(v > 0 for v in learned.difference.values):
        verdict = REPRODUCED
        why = (
            "every pair of trained networks shares universal concepts and keeps unique ones, and shares more than "
            "the same network does with an untrained one on every seed"
        )
    elif all(both_kinds):
        verdict = PARTLY
        why = (
            "every pair of trained networks shares universal concepts and keeps unique ones, but an untrained "
            "network shares as many on some seed: the sharing is not shown to come from training"
        )
    else:
        verdict = NOT_REPRODUCED
        why = "some pair of trained networks has no universal concept, or no unique one"
    numbers["universal_share"] = {kind: seed_summary(v).to_dict() for kind, v in shares.items() if v}
    numbers["trained_minus_control"] = learned.to_dict()
    table = Table(
        "Concepts of the last layers (NLMCD: UMAP + HDBSCAN on token features; universal: matched below ½ of "
        "the mean distance)",
        ["pair kind", "pair", "layers", "concepts A", "concepts B", "universal", "unique to A", "unique to B",
         "universal ÷ smaller set"],
        rows,
        "control: the trained first network against the second architecture at its seeded initialisation "
        "(concepts shared without training); same architecture: two seeds of one network, for reference.",
    )  # fmt: skip
    summary = Table(
        "Share of universal concepts: trained pairs vs the untrained control (paired by seed)",
        ["trained pairs", "control pairs", "trained − control"],
        [[seed_summary(shares["trained"]).text(".2f"), seed_summary(shares["control"]).text(".2f"),
          learned.text("+.2f")]],
    )  # fmt: skip
    notes = [
        "The ½-of-the-mean-distance cut that labels a matched pair universal is the benchmark's "
        "(docs/compare.md); Vielhaben et al. read universality off the ranking of matched pairs.",
    ]
    return Findings(verdict, why, [table, summary], {}, numbers, notes)


# --------------------------------------------------------------------------- the registry

register(
    Claim(
        "harun2024",
        "Harun et al. (2024)",
        "augmentation and more ID classes weaken the tunnel",
        "Deeper layers can compress the representation and hurt out-of-distribution transfer (the tunnel "
        "effect); augmentation and more in-distribution classes weaken it.",
        "% OOD performance retained 64.26 → 78.41 with augmentation (Wilcoxon p < 0.001, |Cliff's δ| = 0.370 over "
        "256 pairs) and 35.81 → 73.42 from CIFAR-10 to CIFAR-100 as the ID dataset (p < 0.001, |δ| = 0.758, 16 "
        "pairs): Harun et al. (NeurIPS 2024), §4.1.2, Appendix C.8, Tables 12–13.",
        {
            "paper": _tunnel_plan(
                "paper",
                "cifar10-id5",
                "resnet18_small",
                CIFAR_PAPER_RECIPE,
                "200 epochs, SGD lr 0.1 (cosine), batch 128; OOD set: the class-disjoint "
                "cifar10-ood5 (Harun et al. use NINCO, ImageNet-R, CIFAR-100 and others).",
            ),
            "cpu": _tunnel_plan(
                "cpu",
                "digits-id5",
                "cifar_resnet20",
                DIGITS_RECIPE,
                f"{ON_DIGITS} (digits-id5 → digits-ood5), cifar_resnet20, 10 epochs; crop + flip on "
                "8×8 digits is a strong augmentation (a flip changes some digits).",
            ),
            "smoke": _tunnel_plan(
                "smoke",
                "digits-id5",
                "digits_cnn",
                SMOKE_RECIPE,
                f"{ON_DIGITS}, 2 epochs: a wiring check, not evidence.",
            ),
        },
        _analyse_tunnel,
    )
)

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

register(
    Claim(
        "vielhaben2025",
        "Vielhaben et al. (2025)",
        "universal and unique concepts",
        "Two networks trained on the same data share universal concepts and each keeps concepts the other lacks.",
        "Universal concepts found across every pair of models compared, beside model-specific ones (Vielhaben et "
        "al. 2025; quoted as a direction).",
        {
            "paper": _concepts_plan(
                "paper",
                "cifar10-5",
                ("cifar_resnet20", "vit_tiny_p4"),
                CIFAR_PAPER_RECIPE,
                "200 epochs; the paper compares large ImageNet models.",
            ),
            "cpu": _concepts_plan(
                "cpu",
                "digits-5",
                ("digits_cnn", "cifar_resnet20"),
                DIGITS_RECIPE,
                f"{ON_DIGITS}, 10 epochs, superclass labels.",
            ),
            "smoke": _concepts_plan(
                "smoke",
                "digits-5",
                ("digits_cnn", "cifar_resnet20"),
                SMOKE_RECIPE,
                f"{ON_DIGITS}, 2 epochs, 2 seeds: a wiring check, not evidence.",
                seeds=(0, 1),
            ),
        },
        _analyse_concepts,
    )
)

__all__ = [
    "CLAIMS",
    "SHUFFLED_PAIRS",
    "UNTRAINED",
    "nguyen2023_architecture",
    "nguyen2023_shuffled",
    "schedule_arm",
    "yang2023",
    "yang2023_schedule",
]
