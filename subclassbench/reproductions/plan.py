"""What a reproduction runs: conditions (a training recipe and how its networks are scored) × seeds, per scale.

A claim's plan is data: each :class:`Condition` names the task and labels a network is trained on, the
architecture, the recipe fields that differ from the scale's base recipe, and what the trained network
is then scored on. A :class:`Plan` is one scale of a claim: the conditions, the seeds, the base recipe, and
in plain words what this scale shortens relative to the paper. Run folders are named by everything that
makes a run, so two claims that need the same network (Yang et al.'s coarse ResNet-20 is also Nguyen &
Kornblith's "random pairs" network) train it once and share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from subclassbench.errors import SubclassbenchError
from subclassbench.training.runs import TrainingRun

SCALES = ("paper", "cpu", "smoke")
SCALE_HELP = {
    "paper": "the papers' recipes, trained to convergence (minutes per run on a GPU; days on a laptop CPU)",
    "cpu": "shortened schedules that fit a 2-core CPU in about an hour; what was shortened is in the report",
    "smoke": "seconds per run on scikit-learn's digits: checks the wiring, makes no claim",
}


@dataclass(frozen=True)
class Condition:
    """One arm of a comparison: how its networks are trained and what they are scored on."""

    name: str  # the arm's label in the report, e.g. "coarse", "fine", "no augmentation"
    task: str  # the task whose train split the network learns
    arch: str
    labels: str = "superclass"
    norm: str | None = None
    recipe: tuple[tuple[str, Any], ...] = ()  # Recipe fields beside the plan's base recipe
    score_task: str | None = None  # the task its network is scored on (default: ``task``)
    metrics: tuple[str, ...] | None = ("clusterability",)  # None: no evaluation (training logs only)
    control: str | None = None  # a negative control: one of CONTROLS
    stands_for: str | None = None  # the arm a control stands in for when the claim's rule is applied to it

    @property
    def scored_on(self) -> str:
        return self.score_task or self.task


@dataclass(frozen=True)
class Plan:
    """One scale of a claim."""

    scale: str
    conditions: tuple[Condition, ...]
    seeds: tuple[int, ...]
    recipe: tuple[tuple[str, Any], ...]  # the base recipe every condition starts from
    shortened: str  # what this scale changes relative to the paper, in words, for the report
    bootstrap: int = 1000  # resamples for the per-result intervals

    @property
    def arms(self) -> Plan:
        """This plan without its negative controls: what a claim's analysis judges."""
        return replace(self, conditions=tuple(c for c in self.conditions if c.control is None))

    @property
    def control_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in CONTROLS if any(c.control == k for c in self.conditions))

    def condition(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(name)

    def recipe_of(self, condition: Condition) -> dict[str, Any]:
        return {**dict(self.recipe), **dict(condition.recipe)}


# --------------------------------------------------------------------------- negative controls

# A claim's rule is applied to each control in place of the arms it stands for; a rule that a control passes
# is a broken rule. The untrained network is the arm's own initialisation (same seed); the permuted-labels
# network is the arm's recipe fitted to its labels shuffled among the training images; raw pixels is the
# input itself, for claims about a representation.
CONTROLS = ("untrained", "permuted labels", "raw pixels")


def control_name(arm: str, kind: str) -> str:
    return f"{arm} [{kind}]"


def control_of(arm: Condition, kind: str) -> Condition:
    """The ``kind`` negative control of ``arm``: trained (or not) like it, scored like it."""
    name = control_name(arm.name, kind)
    if kind == "untrained":
        return replace(arm, name=name, recipe=(("epochs", 0),), control=kind, stands_for=arm.name)
    if kind == "permuted labels":
        labels = "permuted-subclass" if arm.labels == "subclass" else "permuted"
        return replace(arm, name=name, labels=labels, control=kind, stands_for=arm.name)
    if kind == "raw pixels":
        return replace(
            arm, name=name, arch="identity", norm=None, labels="superclass", recipe=(("epochs", 0),),
            control=kind, stands_for=arm.name,
        )  # fmt: skip
    raise ValueError(f"unknown control '{kind}'; use {', '.join(CONTROLS)}")


def with_controls(plan: Plan, arms: tuple[str, ...], kinds: tuple[str, ...] = CONTROLS) -> Plan:
    """``plan`` with each kind of negative control of each named arm added after the arms."""
    added = tuple(control_of(plan.condition(arm), kind) for kind in kinds for arm in arms)
    return replace(plan, conditions=plan.conditions + added)


@dataclass(frozen=True)
class Claim:
    """A finding of a paper, how it is tested at each scale, and how the runs are read."""

    name: str  # the CLI's CLAIM and the report's file name
    paper: str  # short citation, e.g. "Yang, Steinhardt & Hu (ICML 2023)"
    title: str  # the finding in a few words
    statement: str  # the finding in one or two sentences
    paper_figure: str  # the paper's number(s) this is checked against, with where they are from
    plans: dict[str, Plan]
    # (plan, runs) → Findings: reads the trained and scored runs (harness.Runs) and says what they show.
    analyse: Callable[[Plan, Any], Any]

    @property
    def source(self) -> str:
        """The file that defines the claim, from the repository root: its analysis's module, where it is registered
        (``subclassbench/reproductions/claims/harun2024.py``)."""
        return self.analyse.__module__.replace(".", "/") + ".py"

    def plan(self, scale: str) -> Plan:
        if scale not in SCALES:
            raise SubclassbenchError(f"unknown scale '{scale}'; use {', '.join(SCALES)}")
        if scale not in self.plans:
            raise SubclassbenchError(f"claim '{self.name}' has no '{scale}' scale; use {', '.join(self.plans)}")
        return self.plans[scale]


DATASETS = ("cifar10", "tiny-imagenet")  # the image data a plan may need, as ``--data NAME=PATH`` names it


def datasets_of(task: str) -> str | None:
    """The dataset a task's images come from, as ``--data NAME=PATH`` names it; None: packaged data."""
    if task.startswith("cifar10"):
        return "cifar10"
    if task.startswith(("breeds-tiny", "tiny-imagenet")):
        return "tiny-imagenet"
    return None


def _recipe_suffix(recipe: dict[str, Any]) -> str:
    """Recipe fields in a run folder's name, sorted: ``epochs30-weight_decay0.0``."""
    return "-".join(f"{key}{value}" for key, value in sorted(recipe.items()))


def training_run(plan: Plan, condition: Condition, seed: int, root: Path, data: dict[str, str]) -> TrainingRun:
    """The run that trains ``condition`` with ``seed``; its folder under ``root`` names everything that makes it."""
    recipe = plan.recipe_of(condition)
    run = TrainingRun(
        condition.task,
        condition.arch,
        condition.labels,
        seed,
        "",
        condition.norm,
        data.get(datasets_of(condition.task) or ""),
        tuple(sorted(recipe.items())),
    )
    return replace(run, out=str(root / f"{run.folder_name()}-{_recipe_suffix(recipe)}"))
