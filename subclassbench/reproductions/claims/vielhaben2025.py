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
    above_control,
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
    controls: tuple[str, ...] = ("untrained", "permuted labels"),
) -> Plan:
    a, b = archs
    conditions = (Condition(a, task, a, metrics=None), Condition(b, task, b, metrics=None))
    plan = Plan(scale, conditions, seeds, recipe, shortened)
    # The untrained second architecture is also the paired control of the rule: concepts it "shares" with the
    # trained first one come from the images and the architecture's inductive bias, not from training. Raw
    # pixels have no token features to find concepts in.
    return with_controls(plan, (a, b), controls)


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
    counts["unique_share"] = (counts["unique_a"] + counts["unique_b"]) / max(1, counts["a"] + counts["b"])
    counts["tokens_per_image"] = min(c["a"].get("tokens_per_image", 1), c["b"].get("tokens_per_image", 1))
    return counts


def _seed_pairs(records: list[Any]) -> list[tuple[Any, Any]]:
    """Each seed's network with the next seed's (cyclically): one same-architecture pair per seed; with two seeds,
    the one pair (the cycle would count it twice)."""
    pairs = [(x, records[(i + 1) % len(records)]) for i, x in enumerate(records)] if len(records) > 1 else []
    return pairs[:1] if len(records) == 2 else pairs


def _analyse_concepts(plan: Plan, runs: Any) -> Findings:
    a_name, b_name = (c.name for c in plan.conditions)
    task = plan.conditions[0].task
    kinds = {
        "trained": list(zip(runs.of(a_name), runs.of(b_name), strict=True)),
        "control": list(zip(runs.of(a_name), runs.control(b_name, "untrained"), strict=True)),
        # Two seeds of one network, each seed with the next: how many concepts are "unique" from seed noise alone.
        "same architecture": _seed_pairs(runs.of(a_name)),
    }
    shares: dict[str, list[float]] = {kind: [] for kind in kinds}
    unique: dict[str, list[float]] = {kind: [] for kind in kinds}
    per_image = []
    rows: list[list[str]] = []
    numbers: dict[str, Any] = {}
    both_kinds = []
    for kind, pairs in kinds.items():
        for x, y in pairs:
            label = f"{x.condition.name} s{x.seed} vs {y.condition.name} s{y.seed}"
            counts = _concept_counts(runs, task, x, y)
            shares[kind].append(counts["universal_share"])
            unique[kind].append(counts["unique_share"])
            per_image.append(counts["tokens_per_image"])
            if kind == "trained":
                both_kinds.append(counts["universal"] > 0 and counts["unique_a"] + counts["unique_b"] > 0)
            rows.append(
                [kind, label, counts["layers"]]
                + [str(counts[k]) for k in ("a", "b", "universal", "unique_a", "unique_b")]
                + [f"{counts['universal_share']:.2f}"]
            )
            numbers[label] = {"kind": kind, **counts}
    learned = paired(shares["trained"], shares["control"])
    # Universal: more shared than with an untrained network, paired by seed (interval above zero). Unique: more
    # unique concepts between the two architectures than between two seeds of one (seed noise), paired by seed.
    universal = above_control(shares["trained"], shares["control"], "untrained")
    beyond_noise = (
        above_control(unique["trained"], unique["same architecture"], "seed noise")
        if len(unique["same architecture"]) == len(unique["trained"])
        else None
    )
    noise = beyond_noise.difference.text("+.2f") if beyond_noise else "not measured"
    shown = (
        f"universal share − untrained control {universal.difference.text('+.2f')}; unique share − two seeds of one "
        f"network {noise}"
    )
    if all(both_kinds) and universal.above and beyond_noise is not None and beyond_noise.above:
        verdict = REPRODUCED
        why = f"universal concepts beyond the untrained control and unique ones beyond seed noise ({shown})"
    elif all(both_kinds) and universal.above:
        verdict = PARTLY
        why = (
            f"universal concepts beyond the untrained control, but the unique ones are not separated from seed noise "
            f"({shown})"
        )
    else:
        verdict = NOT_REPRODUCED
        why = (
            "some pair of trained networks has no universal concept or no unique one, or the sharing is not above "
            f"the untrained control ({shown})"
        )
    numbers["universal_share"] = {kind: seed_summary(v).to_dict() for kind, v in shares.items() if v}
    numbers["trained_minus_control"] = learned.to_dict()
    numbers["unique_share"] = {kind: seed_summary(v).to_dict() for kind, v in unique.items() if v}
    numbers["universal_above_control"] = universal.to_dict()
    numbers["unique_beyond_seed_noise"] = beyond_noise.to_dict() if beyond_noise else None
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
        *(
            [
                "At the layers compared each image gives one token (tokens per image: 1): the concepts are clusters "
                "of whole images, not of image parts as in Vielhaben et al."
            ]
            if min(per_image, default=1) <= 1
            else []
        ),
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
                f"{ON_DIGITS}, 2 epochs, 2 seeds, the untrained control only: a wiring check, not evidence.",
                seeds=(0, 1),
                controls=("untrained",),
            ),
        },
        _analyse_concepts,
    )
)
