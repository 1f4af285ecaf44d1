"""Vielhaben et al. (2025): two networks trained on the same data share universal concepts and each keeps
unique ones; the second architecture at its seeded initialisation is the control.
"""

from __future__ import annotations

from typing import Any

from subclassbench.reproductions.claims.common import (
    CIFAR_PAPER_RECIPE,
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
    paired,
    seed_summary,
)


def _concepts_plan(
    scale: str,
    task: str,
    archs: tuple[str, str],
    recipe: tuple[tuple[str, Any], ...],
    shortened: str,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Plan:
    a, b = archs
    conditions = (Condition(a, task, a, metrics=None), Condition(b, task, b, metrics=None))
    plan = Plan(scale, conditions, seeds, recipe, shortened)
    # The untrained second architecture is also the paired control of the rule: concepts it "shares" with the
    # trained first one come from the images and the architecture's inductive bias, not from training. Raw
    # pixels have no token features to find concepts in.
    return with_controls(plan, (a, b), ("untrained", "permuted labels"))


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
    a_name, b_name = (c.name for c in plan.conditions)
    task = plan.conditions[0].task
    kinds = {
        "trained": list(zip(runs.of(a_name), runs.of(b_name), strict=True)),
        "control": list(zip(runs.of(a_name), runs.control(b_name, "untrained"), strict=True)),
        "same architecture": list(zip(runs.of(a_name), runs.of(a_name)[1:], strict=False))[:1],
    }
    shares: dict[str, list[float]] = {kind: [] for kind in kinds}
    rows, numbers = [], {}
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
