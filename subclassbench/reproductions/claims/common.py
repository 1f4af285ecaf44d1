"""What the claims share: base recipes, what the cpu and smoke scales shorten, reading scored results, per-layer
curves, and the registry.

A claim module registers its claim where it defines it (:func:`register`); ``claims/__init__.py`` imports
the claim modules in the order ``CLAIMS`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from subclassbench.reproductions.plan import CONTROLS, Claim
from subclassbench.reproductions.stats import AboveControl, above_control, accuracy_gate
from subclassbench.results.result import Result

CIFAR_PAPER_RECIPE = (("batch_size", 128), ("epochs", 200), ("lr", 0.1))
CIFAR_CPU_RECIPE = (("epochs", 2),)
DIGITS_RECIPE = (("epochs", 10),)
SMOKE_RECIPE = (("epochs", 2),)
SMOKE_BOOTSTRAP = 200  # smoke runs check the wiring; their intervals need not be fine

# What a shortened scale changes, in words, for the plans' ``shortened`` texts.
CPU_CIFAR = (
    "cifar_resnet20 only (the paper's ResNet-18 costs ~15× more per step here), 2 epochs instead of 200 "
    "(cosine schedule over the 2), on the JPEG-degraded CIFAR-10 of ../shared/data; no training-length or "
    "weight-decay sweep."
)
ON_DIGITS = "on scikit-learn's 8×8 digits instead of CIFAR-10 / Tiny ImageNet"


# --------------------------------------------------------------------------- reading results


def _summary(result: Result, key: str) -> float | None:
    value: Any = result.summary.get(key)
    return None if value is None else float(value)


def ci95(result: Result, key: str) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of ``key`` in ``result``'s summary; None where it has none."""
    found = (result.summary.get("ci95") or {}).get(key)
    return None if found is None else (float(found[0]), float(found[1]))


def seed_cells(results: list[Result], key: str, spec: str = ".3f") -> str:
    """Each seed's value with its bootstrap interval over the test images: ``0.812 [0.801, 0.824]``."""
    cells = []
    for result in results:
        value, ci = _summary(result, key), ci95(result, key)
        if value is None:
            cells.append("—")
        else:
            cells.append(f"{value:{spec}}" + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else ""))
    return "; ".join(cells)


def seed_values(results: list[Result], key: str) -> list[float]:
    """Each result's ``key`` from its summary, one per seed; a result without it is an error."""
    values = [_summary(r, key) for r in results]
    present = [v for v in values if v is not None]
    if len(present) != len(values):
        raise ValueError(f"a result has no {key}")
    return present


def _curve(result: Result, read: Callable[[Mapping[str, Any]], float | None]) -> tuple[list[float], list[float]]:
    depths, values = [], []
    for layer in result.layers:
        value = read(layer)
        if value is not None:
            depths.append(float(layer["depth"]))
            values.append(float(value))
    return depths, values


def layer_ami(layer: Mapping[str, Any]) -> float | None:
    """One layer's k-means AMI within superclasses: a ``read`` for :func:`curves_png`."""
    return (layer.get("clusterability") or {}).get("ami")


def curves_png(
    arms: dict[str, list[Result]],
    read: Callable[[Mapping[str, Any]], float | None],
    title: str,
    ylabel: str,
    lines: dict[str, float] | None = None,
) -> bytes:
    """Per-layer curves, one per arm: the mean over seeds against relative depth, ± one std shaded."""
    from subclassbench.figures.drawing import blank_figure, render, style

    with style():
        fig = blank_figure(6.4, 3.8)
        ax = fig.subplots()
        for index, (name, results) in enumerate(arms.items()):
            curves = [_curve(r, read) for r in results]
            depths = curves[0][0]
            if any(d != depths for d, _ in curves):
                continue  # seeds of one arm share an architecture, so their layers agree
            values = np.array([v for _, v in curves])
            mean, std = values.mean(axis=0), values.std(axis=0)
            colour = f"C{index % 10}"
            ax.plot(depths, mean, marker="o", markersize=3, color=colour, label=f"{name} ({len(results)} seeds)")
            ax.fill_between(depths, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
        for index, (name, value) in enumerate((lines or {}).items()):
            ax.axhline(value, color="0.3", linestyle=("--", ":", "-.")[index % 3], linewidth=1, label=name)
        ax.set_xlabel("relative depth (stem 0, embedding 1)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, linewidth=0.5)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(title, fontsize=9)
    return render(fig)["png"]


# --------------------------------------------------------------------------- negative controls


def scored_control(runs: Any, arm: str, kind: str) -> list[Result] | None:
    """The results of ``arm``'s ``kind`` control, by seed; None where the plan has no such control or it is not
    scored."""
    results = [r.result for r in runs.control(arm, kind)]
    return results if results and all(r is not None for r in results) else None


def against_controls(runs: Any, arm: str, values: list[float], key: str) -> list[AboveControl]:
    """``values`` (the arm's ``key``, one per seed) against the same key of each of the arm's negative controls
    that the plan scores, paired by seed."""
    out = []
    for kind in CONTROLS:
        results = scored_control(runs, arm, kind)
        if results:
            out.append(above_control(values, seed_values(results, key), kind))
    return out


def controls_text(judged: list[AboveControl], spec: str = "+.3f") -> str:
    """``above the untrained control by +0.12 [+0.08, +0.16] …`` for a verdict's reason."""
    if not judged:
        return "no negative control scored"
    return "; ".join(f"− {c.control} {c.difference.mean:{spec}} [{c.difference.low:{spec}}, {c.difference.high:{spec}}]"
                     for c in judged)  # fmt: skip


def accuracy_gated(runs: Any, arm: str) -> tuple[bool, str]:
    """The accuracy gate: the arm's own head on its training labels, half-way from chance to perfect."""
    cards = [r.card for r in runs.of(arm)]
    accs = [c.get("final_test_acc") for c in cards]
    if any(a is None for a in accs):
        return False, f"{arm}: no test accuracy (not trained)"
    chance = 1 / int(cards[0]["num_classes"])
    passed, threshold = accuracy_gate([float(a) for a in accs], chance)
    return passed, f"{arm}: own-head test acc {np.mean(accs):.3f} vs gate {threshold:.3f} (chance {chance:.3f})"


def difference_against_controls(runs: Any, a: str, b: str, key: str, values: list[float]) -> list[AboveControl]:
    """``values`` (a − b per seed) against the same difference between each kind of control of a and b."""
    out = []
    for kind in CONTROLS:
        ca, cb = scored_control(runs, a, kind), scored_control(runs, b, kind)
        if ca and cb:
            diff = np.subtract(seed_values(ca, key), seed_values(cb, key))
            out.append(above_control(values, list(diff), kind))
    return out


# --------------------------------------------------------------------------- the registry

CLAIMS: dict[str, Claim] = {}  # name → claim, in the order claims/__init__.py imports the claim modules


def register(claim: Claim) -> None:
    """Add ``claim`` to :data:`CLAIMS`; its smoke plan gets the smoke bootstrap."""
    if "smoke" in claim.plans:
        claim.plans["smoke"] = replace(claim.plans["smoke"], bootstrap=SMOKE_BOOTSTRAP)
    CLAIMS[claim.name] = claim
