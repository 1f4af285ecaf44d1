"""A result's summary must follow from its per-layer data: recompute it and list every mismatch.

A hand-edited headline number (``summary.committed_ami``, a layer's mean AMI,
``ood_retained`` …) no longer agrees with the numbers it is computed from, so
reading such a result fails. The recomputation uses the pipeline's own
summary functions on the stored values, so an honest result matches exactly
(up to float rounding, far below any displayed digit).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from subclassbench.metrics.layers import tunnel_summary
from subclassbench.scoring.clusterability import summarize
from subclassbench.scoring.commitment import commit
from subclassbench.scoring.transfer import ood_probe, tunnel_record
from subclassbench.uncertainty.bootstrap import cluster_replicates, interval

if TYPE_CHECKING:
    from subclassbench.scoring.samples import SampleOutputs

CLUSTER_KEYS = ("ami", "ari", "nmi", "purity", "matched_acc")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    same: bool = a == b
    return same


def _compare(problems: list[str], where: str, stored: Any, expected: dict[str, Any], strict: bool = True) -> None:
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
    _compare(problems, where, scores, {"within_superclass_acc": matched / max(counted, 1)})
    ward = scores.get("ward")
    if isinstance(ward, dict) and ward.get("overcluster"):
        factors = [row["factor"] for row in ward["overcluster"]]
        if factors != [1, 2, 3, 4, 5]:
            problems.append(f"{where}: Ward overclustering factors are {factors}, the protocol's are 1-5")
        elif not _same(ward["overcluster"][0]["ami"], ward["ami"]):
            problems.append(f"{where}: Ward AMI at factor 1 differs from the Ward AMI")
    return problems


def _transfer_problems(names: list[str], layers: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    detail = summary.get("transfer")
    if not isinstance(detail, dict):
        return ["summary.transfer is missing although every layer has transfer scores"]
    problems: list[str] = []
    transfer = [layer["transfer"] for layer in layers]
    distinct = [not t["same_as_next"] for t in transfer]
    id_curve = [t["id_acc"] for t in transfer]
    expected: dict[str, Any] = {
        "penultimate_layer": names[-1],
        "best_id_acc": max(id_curve),
        "best_id_layer": names[int(np.argmax(id_curve))],
    }
    if detail.get("distinct_layers") != [n for n, d in zip(names, distinct, strict=True) if d]:
        problems.append("summary.transfer.distinct_layers does not follow from the layers' same_as_next flags")
    for t in transfer:
        accs = [v["acc"] for v in t["ood"].values()]
        _compare(problems, "a layer's transfer", t, {"ood_mean_acc": float(np.mean(accs)) if accs else None})
    sets = detail.get("ood_sets") or []
    for entry in sets:
        curve = [t["ood"].get(entry["name"], {}).get("acc") for t in transfer]
        if any(v is None for v in curve):
            problems.append(f"OOD set {entry['name']} lacks a score at some layer")
            continue
        summary_set = tunnel_summary(names, id_curve, curve, distinct)
        tunnel = tunnel_record(summary_set)
        del summary_set["tunnel"]  # stored as the tunnel record, compared below
        _compare(problems, f"summary.transfer.ood_sets[{entry['name']}]", entry, summary_set)
        if entry.get("tunnel") != tunnel:
            problems.append(f"summary.transfer.ood_sets[{entry['name']}].tunnel does not follow from its curve")
    if sets:
        mean = tunnel_summary(names, id_curve, [t["ood_mean_acc"] for t in transfer], distinct)
        headline = {"ood_retained": mean["ood_retained"], "pearson_id_ood": mean["pearson_id_ood"]}
        if "ood_retained_mean_curve" in detail:  # protocol v3: the headline is the mean of the sets' own
            _compare(problems, "summary.transfer", detail, {"ood_retained_mean_curve": mean["ood_retained"]})
            per_set = [[t["ood"][e["name"]]["acc"] for t in transfer] for e in sets]
            retained = [tunnel_summary(names, id_curve, curve, distinct)["ood_retained"] for curve in per_set]
            headline["ood_retained"] = float(np.mean(retained))
        _compare(problems, "summary.transfer", detail, headline)
        _compare(problems, "summary", summary, headline)
        if detail.get("tunnel") != tunnel_record(mean) or summary.get("tunnel") != tunnel_record(mean):
            problems.append("summary.transfer.tunnel does not follow from the mean OOD curve")
    elif detail.get("tunnel") is not None or detail.get("ood_retained") is not None:
        problems.append("summary.transfer reports a tunnel or % retained without any OOD set")
    # The headline copies at the top of the summary must be the transfer block's own.
    for key in ("ood_retained", "tunnel", "pearson_id_ood"):
        if not _same(summary.get(key), detail.get(key)):
            problems.append(f"summary.{key} is {summary.get(key)!r} but summary.transfer.{key} is {detail.get(key)!r}")
    shift = detail.get("subpopulation_shift")
    for kind in ("subpop_shift", "subpop_refit"):
        curve = [t[f"{kind}_acc"] for t in transfer]
        if any(v is None for v in curve):
            continue
        if not isinstance(shift, dict):
            problems.append("summary.transfer.subpopulation_shift is missing although the layers have shift scores")
            break
        got = tunnel_summary(names, id_curve, curve, distinct)
        del got["tunnel"]
        _compare(
            problems,
            f"summary.transfer.subpopulation_shift.{kind}",
            shift.get(kind),
            {"retained": got.pop("ood_retained"), **got},
            strict=False,
        )
    _compare(problems, "summary.transfer", detail, expected)
    return problems


def _selection_problems(
    clustered: list[dict[str, Any]], summary: dict[str, Any], selection: dict[str, Any]
) -> list[str]:
    """The committed layer(s) and AMI must follow from the selection's per-layer AMIs (the rest of the committed
    metrics need the per-sample file: :func:`sample_problems`)."""
    problems: list[str] = []
    names = [layer["name"] for layer in clustered]
    if selection.get("method") == "crossfit":  # protocol v3: chosen on one hash half, scored on the other
        halves = selection["per_layer_ami"]
        if any(len(halves.get(h, [])) != len(clustered) for h in ("A", "B")):
            return ["summary.selection.per_layer_ami has one value per layer too few or too many in a half"]
        a, b = int(np.argmax(halves["A"])), int(np.argmax(halves["B"]))
        expected = {
            "committed_layer": names[a] if a == b else f"{names[a]} / {names[b]}",
            "committed_ami": (halves["B"][a] + halves["A"][b]) / 2,
            "committed_gap": (max(halves["A"]) + max(halves["B"])) / 2 - (halves["B"][a] + halves["A"][b]) / 2,
        }
        _compare(problems, "summary", summary, expected)
        if summary.get("committed_layers") != [names[a], names[b]]:
            problems.append(f"summary.committed_layers does not follow from the halves' AMIs ({names[a]}, {names[b]})")
        return problems
    per_layer = selection["per_layer_ami"]  # protocol v1/v2: chosen on the validation split
    if len(per_layer) != len(clustered):
        return ["summary.selection.per_layer_ami has one value per layer too few or too many"]
    chosen = int(np.argmax(per_layer))
    committed = clustered[chosen]["clusterability"]
    expected = {
        "committed_layer": names[chosen],
        "committed_ami": committed["ami"],
        "committed_within_superclass_acc": committed["within_superclass_acc"],
        "committed_reconstruction_acc": committed["reconstruction_acc"],
        "committed_superclass_acc": committed["superclass_acc"],
        "committed_gap": max(layer["clusterability"]["ami"] for layer in clustered) - committed["ami"],
    }
    _compare(problems, "summary", summary, expected)
    _compare(problems, "summary.selection", selection, {"ami": per_layer[chosen]})
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
            problems += _selection_problems(clustered, summary, selection)
    elif any(k in summary for k in ("best_layer", "committed_layer")):
        problems.append("summary names a best or committed layer but not every layer has clusterability scores")
    transferred = [layer for layer in layers if "transfer" in layer]
    if transferred and len(transferred) == len(layers):
        problems += _transfer_problems([layer["name"] for layer in layers], layers, summary)
    elif "transfer" in summary:
        problems.append("summary.transfer is present but not every layer has transfer scores")
    return problems


def sample_problems(doc: dict[str, Any], samples: SampleOutputs) -> list[str]:
    """Every per-layer score and interval that the per-sample outputs do not give.

    Cheap by design (no bootstrap is re-run): each layer's AMI, within-superclass
    accuracy, reconstruction and probe accuracies are recomputed from the stored
    assignments and predictions, and every interval from its stored replicates.
    """
    layers, summary = doc["layers"], doc["summary"]
    names = [layer["name"] for layer in layers]
    if samples.layers != names:
        return ["its per-sample file lists other layers than the result"]
    if len(samples.superclass) != int(doc["task"]["n_samples"]):
        return [f"its per-sample file holds {len(samples.superclass)} images, the task says {doc['task']['n_samples']}"]
    problems: list[str] = []
    ones = np.ones((1, len(samples.superclass)), dtype=np.int64)
    correct = samples.reconstruction_correct()
    head_correct = samples.head_reconstruction_correct()
    if samples.head_superclass_pred is not None:
        head_right = float((samples.head_superclass_pred == samples.superclass).mean())
        _compare(
            problems,
            "summary (the head's superclass, from the per-sample file)",
            summary,
            {"head_superclass_acc": head_right},
        )
    for i, layer in enumerate(layers):
        scores = layer.get("clusterability")
        if scores is not None and samples.kmeans is not None:
            got = cluster_replicates(ones, samples.superclass, samples.subclass, samples.kmeans[i])
            expected = {"ami": float(got.ami[0]), "within_superclass_acc": float(got.matched_acc[0])}
            if correct is not None:
                expected["reconstruction_acc"] = float(correct[i].mean())
            if head_correct is not None:
                expected["head_reconstruction_acc"] = float(head_correct[i].mean())
            _compare(problems, f"layer {layer['name']} clusterability (per-sample file)", scores, expected)
        transfer = layer.get("transfer")
        if transfer is not None and "id" in samples.probes:
            expected = {"id_acc": float(samples.probe_correct("id")[i].mean())}
            for probe, key in (("shift", "subpop_shift_acc"), ("refit", "subpop_refit_acc")):
                if probe in samples.probes:
                    expected[key] = float(samples.probe_correct(probe)[i].mean())
            _compare(problems, f"layer {layer['name']} transfer (per-sample file)", transfer, expected)
            for name, entry in transfer["ood"].items():
                if ood_probe(name) not in samples.probes:
                    problems.append(f"layer {layer['name']}: OOD set {name} has no predictions in the per-sample file")
                    continue
                acc = float(samples.probe_correct(ood_probe(name))[i].mean())
                _compare(problems, f"layer {layer['name']} OOD set {name} (per-sample file)", entry, {"acc": acc})
    selection = summary.get("selection") or {}
    if selection.get("method") == "crossfit" and samples.kmeans is not None:
        redone = commit(
            names,
            samples.superclass,
            samples.subclass,
            samples.kmeans,
            samples.committed_shares(),
            selection["split"],
            samples.ward_by_layer(),
        )
        chosen_on = redone.pop("selection")
        _compare(problems, "summary (committed, from the per-sample file)", summary, redone, strict=False)
        for half in ("A", "B"):  # every half-AMI, not just the chosen ones: an edit elsewhere is an edit too
            stored, expected = selection["per_layer_ami"].get(half, []), chosen_on["per_layer_ami"][half]
            if len(stored) != len(expected) or not all(_same(a, b) for a, b in zip(stored, expected, strict=False)):
                problems.append(f"summary.selection.per_layer_ami.{half} does not follow from the per-sample file")
    problems += _interval_problems("summary.ci95", summary.get("ci95", {}), samples.replicates)
    for key, values in samples.replicates.items():  # element 0 is the estimate: the summary's own number
        if isinstance(summary.get(key), float | int) and not _same(summary[key], float(values[0])):
            problems.append(f"summary.{key} is {summary[key]!r} but its per-sample file gives {float(values[0])!r}")
    for i, layer in enumerate(layers):
        reps = {k: v[i] for k, v in samples.layer_replicates.items()}
        problems += _interval_problems(f"layer {layer['name']} ci95", layer.get("ci95", {}), reps)
    return problems


def _interval_problems(where: str, stored: dict[str, Any], replicates: dict[str, np.ndarray]) -> list[str]:
    if set(stored) != set(replicates):
        return [f"{where} lists {sorted(stored)}, but its per-sample file has replicates of {sorted(replicates)}"]
    return [
        f"{where}.{key} is {stored[key]} but its replicates give {interval(reps)}"
        for key, reps in replicates.items()
        if not all(_same(a, b) for a, b in zip(stored[key], interval(reps), strict=True))
    ]
