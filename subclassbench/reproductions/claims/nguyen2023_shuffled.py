"""Nguyen & Kornblith (2023): superclasses of unrelated subclasses keep the subclasses more clusterable.

Each pair of tasks holds the same images and subclasses, grouped at random or by meaning. Each arm is also
scored at its seeds' untrained initialisation, so the verdict reads what training added as well as the
difference between the trained networks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.reproductions.claims.common import (
    CIFAR_CPU_RECIPE,
    CIFAR_PAPER_RECIPE,
    CPU_CIFAR,
    curves_png,
    layer_ami,
    register,
    seed_cells,
    seed_values,
)
from subclassbench.reproductions.plan import Claim, Condition, Plan, with_controls
from subclassbench.reproductions.report import Findings, Table
from subclassbench.reproductions.stats import (
    combine,
    direction_verdict,
    paired,
    seed_summary,
)
from subclassbench.results.result import Result

SHUFFLED_PAIRS = (  # (shuffled arm, natural arm) scored on their own tasks
    ("cifar10-5 (random pairs)", "cifar10-5-semantic (natural pairs)"),
    ("breeds-tiny16-shuffled", "breeds-tiny16"),
)


UNTRAINED = ", untrained"  # the suffix of an arm's control: the same seeds' initialisations, scored on its task


def _shuffled_plan(
    scale: str,
    arch: str,
    tiny_arch: str | None,
    recipe: tuple[tuple[str, Any], ...],
    tiny_recipe: tuple[tuple[str, Any], ...],
    shortened: str,
) -> Plan:
    """Each pair's shuffled and natural arms, and each arm's untrained control: the two tasks group the same
    subclasses differently, and unrelated subclasses can be easier to cluster before any training."""
    arms: list[tuple[tuple[str, str], tuple[str, str], str, tuple[tuple[str, Any], ...]]] = [
        (SHUFFLED_PAIRS[0], ("cifar10-5", "cifar10-5-semantic"), arch, ())
    ]
    if tiny_arch:  # the Tiny ImageNet arms are named after their tasks
        arms.append((SHUFFLED_PAIRS[1], SHUFFLED_PAIRS[1], tiny_arch, tiny_recipe))
    conditions = []
    for names, tasks, network, arm_recipe in arms:
        conditions += [
            Condition(name, task, network, recipe=arm_recipe) for name, task in zip(names, tasks, strict=True)
        ]
        conditions += [
            Condition(name + UNTRAINED, task, network, recipe=(("epochs", 0),))
            for name, task in zip(names, tasks, strict=True)
        ]
    plan = Plan(scale, tuple(conditions), (0, 1, 2), recipe, shortened)
    # The untrained control is already an arm of its own (the rule reads the gain over it); the permuted-labels
    # networks and raw pixels stand in for the trained arms, so the rule is checked against both nulls too.
    trained = tuple(c.name for c in conditions if not c.name.endswith(UNTRAINED))
    return with_controls(plan, trained, ("permuted labels", "raw pixels"))


def _analyse_shuffled(plan: Plan, runs: Any) -> Findings:
    rows, seed_rows, verdicts, parts, numbers = [], [], [], [], {}
    arms: dict[str, list[Result]] = {}
    for shuffled, natural in SHUFFLED_PAIRS:
        if not (runs.has(shuffled) and runs.has(natural)):
            continue
        a, b = runs.results(shuffled), runs.results(natural)
        arms[shuffled], arms[natural] = a, b
        controls = runs.has(shuffled + UNTRAINED) and runs.has(natural + UNTRAINED)
        ua, ub = (runs.results(shuffled + UNTRAINED), runs.results(natural + UNTRAINED)) if controls else ([], [])
        tasks = (runs.of(shuffled)[0].condition.task, runs.of(natural)[0].condition.task)
        part: dict[str, Any] = {}
        for key, label in (("committed_ami", "k-means AMI"), ("committed_ward_ami", "Ward AMI (factor 1)")):
            av, bv = _ward_or(a, key), _ward_or(b, key)
            comparisons = [(key, label, av, bv)]
            if controls:
                uav, ubv = _ward_or(ua, key), _ward_or(ub, key)
                comparisons += [
                    (f"{key}_untrained", f"{label}, untrained (control)", uav, ubv),
                    (
                        f"{key}_gain",
                        f"{label} gained by training (trained − untrained, per seed)",
                        list(np.subtract(av, uav)),
                        list(np.subtract(bv, ubv)),
                    ),
                ]
            for name, text, sv, nv in comparisons:
                diff = paired(sv, nv)
                verdict, why = direction_verdict(diff.difference, +1)
                decides = name in ("committed_ami", "committed_ami_gain")
                if decides:
                    verdicts.append(verdict)
                    what = "trained" if name == "committed_ami" else "gain over the untrained control"
                    parts.append(f"{tasks[0]} vs {tasks[1]}, {what}: {verdict}")
                rows.append(
                    [
                        f"{shuffled} − {natural}",
                        text,
                        seed_summary(sv).text(),
                        seed_summary(nv).text(),
                        diff.text(),
                        "—" if name.endswith("_untrained") else verdict,
                    ]
                )
                part[name] = {
                    "shuffled": seed_summary(sv).to_dict(),
                    "natural": seed_summary(nv).to_dict(),
                    "difference": diff.to_dict(),
                }
                if not name.endswith("_untrained"):  # the controls are shown, not judged
                    part[name].update(verdict=verdict, why=why)
        for name, results in ((shuffled, a), (natural, b)) + (
            ((shuffled + UNTRAINED, ua), (natural + UNTRAINED, ub)) if controls else ()
        ):
            seed_rows.append(
                [name, seed_cells(results, "committed_ami"), seed_cells(results, "committed_superclass_acc")]
            )
        numbers[f"{shuffled} vs {natural}"] = part
    if not verdicts:
        raise SubclassbenchError("the plan has no shuffled/natural pair of arms to compare")
    verdict = combine(verdicts)
    why = "shuffled minus natural committed k-means AMI, paired by seed: " + "; ".join(parts)
    table = Table(
        "Subclass clusterability: superclasses of unrelated subclasses vs natural ones",
        ["pair", "metric (committed layer)", "shuffled", "natural", "shuffled − natural (paired by seed)", "verdict"],
        rows,
        "Each network is scored on the task it was trained on; its untrained control is the same seed's "
        "initialisation scored on the same task. Verdict: reproduced when every seed's difference is positive and "
        "the t-interval of the mean excludes 0. The k-means AMI rows decide: the trained networks' difference (the "
        "paper's comparison) and, where the controls ran, the difference in what training added (trained − "
        "untrained), so that a task whose subclasses are easier to cluster before any training does not pass for "
        "structure the training kept. The untrained rows are shown, not judged.",
    )
    per_seed = Table("Per seed [95% bootstrap interval]", ["arm", "committed AMI", "superclass acc (probe)"], seed_rows)
    figure = curves_png(
        arms,
        layer_ami,
        "subclass AMI per layer: shuffled vs natural superclasses",
        "k-means AMI within superclasses (test)",
    )
    notes = [
        "Both tasks of a pair hold the same images and subclasses and differ only in how the subclasses are "
        "grouped, so the networks are trained on different labels and each AMI is measured within its own "
        "task's superclasses, as in Nguyen & Kornblith's control.",
    ]
    if SHUFFLED_PAIRS[0][0] in arms:
        notes.append(
            "cifar10-5 pairs CIFAR-10's classes by label mod 5 (airplane/dog, automobile/frog, …): unrelated "
            "subclasses, the role of the shuffled BREEDS superclasses; cifar10-5-semantic pairs neighbouring "
            "labels (airplane/automobile, bird/cat, …), related classes."
        )
    if SHUFFLED_PAIRS[1][0] in arms:
        notes.append(
            "breeds-tiny16-shuffled regroups breeds-tiny16's 64 subclasses into 16 superclasses of 4 at random "
            "(docs/breeds.md)."
        )
    return Findings(verdict, why, [table, per_seed], {"ami-per-layer": figure}, numbers, notes)


def _ward_or(results: list[Result], key: str) -> list[float]:
    if key != "committed_ward_ami":
        return seed_values(results, key)
    out = []
    for result in results:
        ward = result.committed_ward or {}
        out.append(float(ward.get("ami", float("nan"))))
    return out


register(
    Claim(
        "nguyen2023-shuffled",
        'Nguyen & Kornblith (2023), "Probing clustering in neural network representations"',
        "unrelated subclasses stay more clusterable",
        "When a superclass is made of unrelated subclasses (shuffled BREEDS superclasses), a network trained on "
        "the superclasses keeps its subclasses far more clusterable than when the superclass is natural.",
        "Subclass clusterability is markedly higher for shuffled than for natural BREEDS superclasses in every "
        "architecture they train (Nguyen & Kornblith 2023; quoted as a direction, the benchmark's AMI is not "
        "their exact quantity).",
        {
            "paper": _shuffled_plan(
                "paper",
                "cifar_resnet20",
                "resnet18_small",
                CIFAR_PAPER_RECIPE,
                (("epochs", 100),),
                "CIFAR: 200 epochs, SGD lr 0.1 (cosine), batch 128; Tiny ImageNet: resnet18_small at "
                "64 px, 100 epochs (the paper trains ImageNet-scale networks on full-size BREEDS).",
            ),
            "cpu": _shuffled_plan(
                "cpu",
                "cifar_resnet20",
                "cifar_resnet20",
                CIFAR_CPU_RECIPE,
                (("epochs", 10),),
                f"{CPU_CIFAR} Tiny ImageNet: cifar_resnet20 (it reads the 64-px photographs at 32 px) for 10 "
                "epochs on the train split (about 100 of the 125 images per class in ../shared/data/tiny-imagenet; "
                "20 % are held out), instead of resnet18_small at 64 px for 100, which would take about 25 "
                "minutes per epoch here.",
            ),
        },
        _analyse_shuffled,
    )
)
