"""Harun et al. (2024): augmentation and more in-distribution classes weaken the tunnel effect.

The tunnel is read as the % of out-of-distribution probe accuracy the penultimate layer retains relative to
the best layer, on a class-disjoint OOD set; each variable is compared paired by seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from subclassbench.reproductions.claims.common import (
    CIFAR_PAPER_RECIPE,
    DIGITS_RECIPE,
    ON_DIGITS,
    SMOKE_RECIPE,
    accuracy_gated,
    controls_text,
    curves_png,
    difference_against_controls,
    register,
    seed_cells,
    seed_values,
)
from subclassbench.reproductions.plan import Claim, Condition, Plan, with_controls
from subclassbench.reproductions.report import Findings, Table
from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    above_all_controls,
    combine,
    direction_verdict,
    paired,
    seed_summary,
)


def _layer_ood(layer: Mapping[str, Any]) -> float | None:
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
    plan = Plan(scale, conditions, (0, 1, 2), recipe, shortened)
    return with_controls(plan, tuple(c.name for c in conditions))


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
    gates = {name: accuracy_gated(runs, name) for name in names}
    for label, more, fewer, paper in comparisons:
        diff = paired(retained[more], retained[fewer])
        verdict, why = direction_verdict(diff.difference, +1)
        # The same difference between the two arms' negative controls, paired by seed: networks fitted to
        # permuted labels also retain more OOD accuracy with augmentation, so the direction alone proves nothing.
        judged = difference_against_controls(runs, more, fewer, "ood_retained", list(diff.difference.values))
        if not (gates[more][0] and gates[fewer][0]):
            failed = "; ".join(gates[n][1] for n in (more, fewer) if not gates[n][0])
            verdict, why = NOT_REPRODUCED, f"not judged: an arm fails the accuracy gate ({failed})"
        elif max(retained[fewer]) >= 95 and max(retained[more]) >= 95:
            verdict, why = NOT_REPRODUCED, "no tunnel formed in either arm (≥ 95 % retained on every seed)"
        elif verdict != NOT_REPRODUCED and not above_all_controls(judged):
            verdict = NOT_REPRODUCED
            why = f"the difference is not above its negative controls' ({controls_text(judged, '+.1f')})"
        verdicts.append(verdict)
        test_rows.append(
            [label, f"{more} − {fewer}", paper, diff.text("+.1f"), "; ".join(c.text("+.1f") for c in judged) or "—",
             "; ".join(gates[n][1] for n in (more, fewer)), verdict]
        )  # fmt: skip
        numbers[label] = {
            "difference": diff.to_dict(),
            "against_controls": [c.to_dict() for c in judged],
            "gates": [gates[n][1] for n in (more, fewer)],
            "verdict": verdict,
            "why": why,
        }
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
            ["variable", "difference", "paper", "ours", "− negative controls' difference (paired)", "accuracy gate",
             "verdict"],
            test_rows,
            "With 3 seeds the smallest two-sided exact Wilcoxon p is 0.25: the test cannot reject at 3 seeds. "
            "Verdict: judged only when both arms pass the accuracy gate (own-head test accuracy at least half-way "
            "from chance to perfect); reproduced when every seed is in the paper's direction, the t-interval of the "
            "mean excludes 0, and the difference is above the same difference between the arms' negative controls "
            "(95% t-interval of the paired difference above zero, one-sided t-test Holm-adjusted over the "
            "controls); partly when the mean is in the paper's direction and above the controls.",
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
