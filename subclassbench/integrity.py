"""A result's summary must follow from its per-layer data: recompute it and list every mismatch.

A hand-edited headline number (``summary.committed_ami``, a layer's mean AMI,
``ood_retained`` …) no longer agrees with the numbers it is computed from, so
reading such a result fails. The recomputation uses the pipeline's own
summary functions on the stored values, so an honest result matches exactly
(up to float rounding, far below any displayed digit).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from subclassbench.clusterability import commit_layer, summarize
from subclassbench.metrics import ood_curve_summary

CLUSTER_KEYS = ("ami", "ari", "nmi", "purity", "matched_acc")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _compare(
    problems: list[str], where: str, stored: Any, expected: dict[str, Any], strict: bool = True
) -> None:
    """Every expected value must be stored and equal (``strict=False``: only the stored ones are compared)."""
    if not isinstance(stored, dict):
        problems.append(f"{where} is missing or not an object")
        return
    for key, value in expected.items():
        if isinstance(value, dict):
            continue
        if key not in stored:
            if strict:
                problems.append(f"{where}.{key} is missing; its data gives {value!r}")
        elif not _same(stored[key], value):
            problems.append(f"{where}.{key} is {stored[key]!r} but its data gives {value!r}")


def _layer_problems(layer: dict[str, Any], n_samples: int) -> list[str]:
    scores = layer.get("clusterability")
    if not scores:
        return []
    problems: list[str] = []
    per = scores["per_superclass"]
    where = f"layer {layer['name']} clusterability"
    _compare(problems, where, scores, {k: float(np.mean([e[k] for e in per])) for k in CLUSTER_KEYS})
    counted = sum(int(e["n"]) for e in per)
    if counted != n_samples:
        problems.append(f"{where}: superclasses hold {counted} samples, the task says {n_samples}")
    matched = sum(round(e["matched_acc"] * e["n"]) for e in per)
    _compare(problems, where, scores, {"fine_acc": matched / max(counted, 1)})
    return problems


def _transfer_problems(names: list[str], layers: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    detail = summary.get("transfer")
    if not isinstance(detail, dict):
        return ["summary.transfer is missing although every layer has transfer scores"]
    problems: list[str] = []
    id_curve = [layer["transfer"]["id_acc"] for layer in layers]
    expected: dict[str, Any] = {"penultimate_layer": names[-1], "best_id_acc": max(id_curve)}
    expected["best_id_layer"] = names[int(np.argmax(id_curve))]
    curves = {kind: [layer["transfer"][f"{kind}_acc"] for layer in layers] for kind in ("ood_shift", "ood_refit")}
    complete = {kind: curve for kind, curve in curves.items() if not any(v is None for v in curve)}
    # The pipeline's rule: the refit curve is the headline when the task defines it, else the shift curve.
    expected["ood_basis"] = "ood_refit" if "ood_refit" in complete else "ood_shift"
    for kind, curve in complete.items():
        kind_expected = ood_curve_summary(names, id_curve, curve)
        _compare(problems, f"summary.transfer.{kind}", detail.get(kind), kind_expected)
        if kind == expected["ood_basis"]:
            headline = {k: kind_expected[k] for k in ("ood_retained", "tunnel_start", "pearson_id_ood")}
            _compare(problems, "summary.transfer", detail, headline)
            _compare(problems, "summary", summary, headline)
    _compare(problems, "summary.transfer", detail, expected)
    return problems


def summary_problems(doc: dict[str, Any]) -> list[str]:
    """Every summary value (and every layer's aggregate score) that its per-layer data does not give."""
    layers, summary = doc["layers"], doc["summary"]
    problems: list[str] = []
    for layer in layers:
        problems += _layer_problems(layer, int(doc["task"]["n_samples"]))
    clustered = [layer for layer in layers if "clusterability" in layer]
    if clustered and len(clustered) == len(layers):
        _compare(problems, "summary", summary, summarize(clustered))
        selection = summary.get("selection")
        if selection is not None:
            per_layer = selection["per_layer_ami"]
            if len(per_layer) != len(clustered):
                problems.append("summary.selection.per_layer_ami has one value per layer too few or too many")
            else:
                chosen = commit_layer(clustered, [{"ami": v} for v in per_layer], selection["split"])
                _compare(problems, "summary", summary, chosen)
                _compare(problems, "summary.selection", selection, {"ami": chosen["selection"]["ami"]})
    elif any(k in summary for k in ("best_layer", "committed_layer")):
        problems.append("summary names a best or committed layer but not every layer has clusterability scores")
    transferred = [layer for layer in layers if "transfer" in layer]
    if transferred and len(transferred) == len(layers):
        problems += _transfer_problems([layer["name"] for layer in layers], layers, summary)
    elif "transfer" in summary:
        problems.append("summary.transfer is present but not every layer has transfer scores")
    return problems
