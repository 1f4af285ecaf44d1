"""Nguyen & Kornblith (2023): ResNets keep more subclass structure than ViTs at the same training budget, and
the normalisation (batch norm, layer norm, none) moves the layer where subclasses cluster best.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.reproductions.claims.common import (
    CIFAR_PAPER_RECIPE,
    DIGITS_RECIPE,
    ON_DIGITS,
    accuracy_gated,
    controls_text,
    curves_png,
    difference_against_controls,
    layer_ami,
    register,
    scored_control,
    seed_values,
)
from subclassbench.reproductions.plan import CONTROLS, Claim, Condition, Plan, with_controls
from subclassbench.reproductions.report import Findings, Table
from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    above_all_controls,
    combine,
    direction_verdict,
    paired,
    seed_summary,
)
from subclassbench.reproductions.variants import FLATTENED, POOLED, curves

NORMS = ("bn", "ln", "none")


def _norm_arm(task: str, arch: str, norm: str) -> str:
    return f"{task}: {arch} ({norm})"


def _architecture_plan(
    scale: str,
    tasks: tuple[str, ...],
    resnet: str,
    vit: str,
    recipe: tuple[tuple[str, Any], ...],
    shortened: str,
    norms_arch: str = "cifar_resnet20",
    seeds: tuple[int, ...] = (0, 1, 2),
    controls: tuple[str, ...] = CONTROLS,
) -> Plan:
    """Per task: the ResNet and ViT arms, and ``norms_arch`` with each normalisation. When the ResNet arm is
    ``norms_arch`` itself, its batch-norm arm is the ResNet arm (one network, trained once)."""
    conditions = []
    for task in tasks:
        if resnet != norms_arch:
            conditions.append(Condition(f"{task}: {resnet}", task, resnet))
        conditions.append(Condition(f"{task}: {vit}", task, vit))
        for norm in NORMS:
            # bn is the architecture's default: left unset, the run is the one every other claim trains.
            conditions.append(
                Condition(_norm_arm(task, norms_arch, norm), task, norms_arch, norm=None if norm == "bn" else norm)
            )
    plan = Plan(scale, tuple(conditions), seeds, recipe, shortened)
    return with_controls(plan, tuple(c.name for c in conditions), controls)


def _architecture_arms(plan: Plan, task: str) -> tuple[str, str, list[str]]:
    """(ResNet arm, ViT arm, normalisation arms) of ``task`` in ``plan``."""
    names = [c.name for c in plan.conditions if c.task == task]
    norm_arms = [n for n in names if n.endswith(tuple(f" ({norm})" for norm in NORMS))]
    vit = next(c.name for c in plan.conditions if c.task == task and c.arch.startswith("vit"))
    others = [n for n in names if n not in norm_arms and n != vit]
    resnet = others[0] if others else next(n for n in norm_arms if n.endswith(" (bn)"))
    return resnet, vit, norm_arms


def _control_spreads(runs: Any, norm_names: list[str]) -> dict[str, float]:
    """Per control kind, the spread of mean best-layer depth over the normalisation arms' controls."""
    out = {}
    for kind in CONTROLS:
        groups = [scored_control(runs, n, kind) for n in norm_names]
        if all(groups):
            means = [float(np.mean(seed_values(g, "best_depth"))) for g in groups if g]
            out[kind] = max(means) - min(means)
    return out


def _flattened_variant(runs: Any, norm_names: list[str]) -> tuple[list[list[str]], dict[str, Any]]:
    """The normalisation arms' best layers under Nguyen & Kornblith's own features (flattened maps, not
    normalised): a recorded variant beside the protocol's pooled, normalised ones (protocol §5), never judged."""
    rows: list[list[str]] = []
    numbers: dict[str, Any] = {}
    means: dict[str, float] = {}
    depths: dict[str, list[float]] = {}
    for name in norm_names:
        found = [curves(record.folder) for record in runs.of(name)]
        flat = [c[FLATTENED] for c in found]
        depths[name] = [c.best_depth for c in flat]
        means[name] = float(np.mean(depths[name]))
        rows.append(
            [
                name,
                ", ".join(c.best_layer for c in flat),
                seed_summary(depths[name]).text(".2f"),
                seed_summary([c[POOLED].best_depth for c in found]).text(".2f"),
                seed_summary([max(c.ami) for c in flat]).text(),
            ]
        )
        numbers[name] = {"flattened_best_depth": seed_summary(depths[name]).to_dict()}
    spread = max(means.values()) - min(means.values())
    high, low = max(means, key=lambda n: means[n]), min(means, key=lambda n: means[n])
    separated = min(depths[high]) > max(depths[low])
    apart = "seeds separated" if separated else "seeds overlap"
    rows.append(["spread of mean depth (flattened)", f"{spread:.2f}", apart, "", ""])
    numbers["flattened_best_depth_spread"] = spread
    numbers["flattened_seeds_separated"] = separated
    return rows, numbers


def _analyse_architecture(plan: Plan, runs: Any) -> Findings:
    tasks = list(dict.fromkeys(c.task for c in plan.conditions))
    rows, norm_rows, verdicts, norm_verdicts, numbers, figures = [], [], [], [], {}, {}
    for task in tasks:
        arms = {c.name: runs.results(c.name) for c in plan.conditions if c.task == task}
        resnet_name, vit_name, norm_names = _architecture_arms(plan, task)
        diff = paired(seed_values(arms[resnet_name], "committed_ami"), seed_values(arms[vit_name], "committed_ami"))
        verdict, why = direction_verdict(diff.difference, +1)
        # Judged only when both arms learned their task (the gate), and only when the difference exceeds the
        # one between the same arms' negative controls, paired by seed (an untrained ResNet already differs).
        gates = [accuracy_gated(runs, resnet_name), accuracy_gated(runs, vit_name)]
        per_seed = list(diff.difference.values)
        judged = difference_against_controls(runs, resnet_name, vit_name, "committed_ami", per_seed)
        if not all(g for g, _ in gates):
            failed = "; ".join(t for g, t in gates if not g)
            verdict, why = NOT_REPRODUCED, f"not judged: an arm fails the accuracy gate ({failed})"
        elif verdict != NOT_REPRODUCED and not above_all_controls(judged):
            verdict = NOT_REPRODUCED
            why = f"the difference is not above its negative controls' ({controls_text(judged)})"
        verdicts.append(verdict)
        for name in (resnet_name, vit_name):
            rows.append(
                [
                    name,
                    seed_summary(seed_values(arms[name], "committed_ami")).text(),
                    seed_summary(seed_values(arms[name], "best_ami")).text(),
                    seed_summary(seed_values(arms[name], "committed_superclass_acc")).text(),
                    "",
                ]
            )
        rows.append([f"{resnet_name} − {vit_name}", diff.text(), "; ".join(c.text() for c in judged) or "—",
                     "; ".join(t for _, t in gates), verdict])  # fmt: skip
        depths = {name: seed_values(arms[name], "best_depth") for name in norm_names}
        for name in norm_names:
            best_layers = [r.summary["best_layer"] for r in arms[name]]
            norm_rows.append(
                [
                    name,
                    ", ".join(best_layers),
                    seed_summary(depths[name]).text(".2f"),
                    seed_summary(seed_values(arms[name], "best_ami")).text(),
                    seed_summary(seed_values(arms[name], "committed_superclass_acc")).text(),
                ]
            )
        means = {name: float(np.mean(v)) for name, v in depths.items()}
        spread = max(means.values()) - min(means.values())
        high, low = max(means, key=lambda n: means[n]), min(means, key=lambda n: means[n])
        separated = min(depths[high]) > max(depths[low])
        norm_verdict = REPRODUCED if spread >= 0.1 and separated else PARTLY if spread >= 0.1 else NOT_REPRODUCED
        norm_gates = [accuracy_gated(runs, n) for n in norm_names]
        control_spreads = _control_spreads(runs, norm_names)
        if not all(g for g, _ in norm_gates):
            norm_verdict = NOT_REPRODUCED  # not judged: a normalisation arm did not learn its task
        elif not control_spreads or spread <= max(control_spreads.values()):
            norm_verdict = NOT_REPRODUCED  # a network that learned nothing moves its best layer as far
        norm_verdicts.append(norm_verdict)
        norm_rows.append(["spread of mean depth", f"{spread:.2f}",
                          "; ".join(f"{k}: {v:.2f}" for k, v in control_spreads.items()) or "—",
                          "; ".join(t for _, t in norm_gates), norm_verdict])  # fmt: skip
        variant_rows, variant_numbers = _flattened_variant(runs, norm_names)
        numbers[task] = {
            "flattened_variant": variant_numbers,
            "resnet_minus_vit_committed_ami": diff.to_dict(),
            "verdict_resnet_vit": verdict,
            "why": why,
            "gates": [t for _, t in gates],
            "against_controls": [c.to_dict() for c in judged],
            "norm_gates": [t for _, t in norm_gates],
            "best_depth_spread": spread,
            "control_best_depth_spreads": control_spreads,
            "best_depth_by_norm": {n: seed_summary(v).to_dict() for n, v in depths.items()},
            "verdict_norm": norm_verdict,
        }
        figures[f"{task}-ami-per-layer"] = curves_png(
            arms, layer_ami, f"{task}: subclass AMI per layer", "k-means AMI within superclasses (test)"
        )
    verdict = combine(verdicts + norm_verdicts)
    why = (
        f"ResNet − ViT committed AMI: {', '.join(verdicts)}; the normalisation moves the best layer: "
        f"{', '.join(norm_verdicts)}"
    )
    tables = [
        Table(
            "ResNet vs ViT at the same training budget",
            [
                "arm",
                "committed AMI",
                "best-layer AMI (difference row: − negative controls' difference)",
                "superclass acc (probe, committed layer; difference row: accuracy gate)",
                "verdict",
            ],
            rows,
            "Verdict: judged only when both arms pass the accuracy gate (own-head test accuracy on the superclasses "
            "at least half-way from chance to perfect); reproduced when every seed's ResNet − ViT difference is "
            "positive, the t-interval of the mean excludes 0, and the difference is above the same difference "
            "between the arms' negative controls (95% t-interval of the paired difference above zero, one-sided "
            "t-test Holm-adjusted over the controls).",
        ),
        Table(
            "Normalisation and the layer where subclasses cluster best",
            ["arm", "best layer per seed", "best-layer depth", "best-layer AMI", "superclass acc"],
            norm_rows,
            "Verdict: judged only when every arm passes the accuracy gate; reproduced when the mean best-layer "
            "depths of two normalisations differ by ≥ 0.1, their seeds do not overlap, and the spread is larger than "
            "the spread of the same arms' negative controls; partly when only the means differ by ≥ 0.1 (and beat "
            "the controls' spread). Last row: the spread, the controls' spreads, the gates.",
        ),
    ]
    tables.append(
        Table(
            "Recorded variant: Nguyen & Kornblith's features (flattened maps, not normalised)",
            [
                "arm",
                "best layer per seed (flattened)",
                "best-layer depth (flattened)",
                "best-layer depth (pooled, normalised: the protocol's, recomputed)",
                "best-layer AMI (flattened)",
            ],
            variant_rows,
            "Not judged: the verdict above reads the protocol's pooled, L2-normalised features (docs/protocol.md §5). "
            "Nguyen & Kornblith cluster each layer's flattened maps as they are; this table scores the same trained "
            "networks that way (subclassbench/reproductions/variants.py), so a reader sees whether the "
            "normalisation answer survives the source's own features. Test split, the protocol's k-means.",
        )
    )
    notes = [
        "A ViT that has not learned its superclasses (superclass accuracy near chance) says nothing about "
        "architectures: read the superclass column before the AMI."
    ]
    return Findings(verdict, why, tables, figures, numbers, notes)


register(
    Claim(
        "nguyen2023-architecture",
        'Nguyen & Kornblith (2023), "Probing clustering in neural network representations"',
        "ResNets keep more subclass structure than ViTs; normalisation moves the best layer",
        "Trained on superclasses, ResNets keep more subclass structure than ViTs, and the normalisation "
        "(batch norm, layer norm, none) changes at which layer subclasses cluster best.",
        "ResNets above ViTs in subclass clusterability; the best layer moves with the normalisation layer "
        "(Nguyen & Kornblith 2023; quoted as directions).",
        {
            "paper": _architecture_plan(
                "paper",
                ("cifar10-5", "breeds-tiny16"),
                "resnet18_small",
                "vit_tiny_p4",
                CIFAR_PAPER_RECIPE,
                "none beyond the architectures: 200 epochs, same recipe for every arm (the same budget).",
            ),
            "cpu": _architecture_plan(
                "cpu",
                ("digits-5",),
                "cifar_resnet20",
                "vit_tiny_p4",
                DIGITS_RECIPE,
                f"{ON_DIGITS}, 10 epochs; the ResNet arm is cifar_resnet20 (batch norm), since "
                "resnet18_small costs too much on this CPU.",
                norms_arch="cifar_resnet20",
            ),
            "smoke": _architecture_plan(
                "smoke",
                ("digits-5",),
                "cifar_resnet20",
                "vit_tiny_p4",
                (("epochs", 1),),
                f"{ON_DIGITS}, 1 epoch, 2 seeds, the raw-pixel control only: a wiring check, not evidence.",
                seeds=(0, 1),
                controls=("raw pixels",),
            ),
        },
        _analyse_architecture,
    )
)
