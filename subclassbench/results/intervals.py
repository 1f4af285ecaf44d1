"""Confidence intervals of a result: bootstrap replicates of its headline and per-layer metrics.

Built from the per-sample outputs (``samples.SampleOutputs``) alone, so the
same code computes them at evaluation time, checks them when a result is
read, and pairs two results on the leaderboard. See ``bootstrap.py`` for the
resampling and ``docs/uncertainty.md`` for the method and its calibration.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result
from subclassbench.scoring.commitment import crossfit
from subclassbench.scoring.samples import SampleOutputs
from subclassbench.uncertainty.bootstrap import (
    BOOTSTRAP,
    METHOD,
    cluster_replicates,
    interval,
    mean_replicates,
    plan_digest,
    retained_replicates,
    stratified_counts,
    with_estimate,
)

EVALUATION = "evaluation"  # the counts stream of the evaluation split


def _stream(name: str) -> str:
    return EVALUATION if name == EVALUATION else f"probe.{name}"


@dataclass
class Intervals:
    replicates: dict[str, np.ndarray]  # headline metric → (1 + B,): the estimate, then B replicates
    layer_replicates: dict[str, np.ndarray]  # per-layer metric → (L, 1 + B)
    n_layers: int
    record: dict[str, Any]  # the result's ``uncertainty`` entry

    @property
    def summary(self) -> dict[str, list[float]]:
        """Headline metric → ``[low, high]``."""
        return {k: interval(v) for k, v in self.replicates.items()}

    def layers(self) -> list[dict[str, list[float]]]:
        """Per layer: metric → ``[low, high]``."""
        return [{k: interval(v[i]) for k, v in self.layer_replicates.items()} for i in range(self.n_layers)]


class _Replicator:
    """Counts per sample set, drawn once and shared by every metric on that set."""

    def __init__(self, samples: SampleOutputs, resamples: int, seed: int) -> None:
        self.samples, self.resamples, self.seed = samples, resamples, seed
        self._counts: dict[str, np.ndarray] = {}

    def counts(self, name: str) -> np.ndarray:
        if name not in self._counts:
            strata = self.strata(name)
            counts = stratified_counts(strata, self.resamples, self.seed, _stream(name))
            self._counts[name] = with_estimate(counts)  # element 0 of every statistic: the point estimate
        return self._counts[name]

    def strata(self, name: str) -> np.ndarray:
        return self.samples.superclass if name == EVALUATION else self.samples.probes[name].truth

    def digest(self, name: str) -> str:
        return plan_digest(self.strata(name), self.resamples, self.seed, _stream(name))

    def probe_curve(self, name: str) -> np.ndarray:
        """(B, L) replicates of one probe test set's accuracy at every layer."""
        return mean_replicates(self.counts(name), self.samples.probe_correct(name).T)


def compute(
    samples: SampleOutputs,
    per_layer: list[dict[str, Any]],
    summary: dict[str, Any],
    resamples: int = int(BOOTSTRAP["resamples"]),
    seed: int = int(BOOTSTRAP["seed"]),
) -> Intervals:
    """Bootstrap replicates of every headline metric and of the per-layer curves (their intervals follow)."""
    rep = _Replicator(samples, resamples, seed)
    names = samples.layers
    index = {name: i for i, name in enumerate(names)}
    per_layer_reps: list[dict[str, np.ndarray]] = [{} for _ in names]
    correct = samples.reconstruction_correct()
    head_correct = samples.head_reconstruction_correct()
    if samples.kmeans is not None:
        counts = rep.counts(EVALUATION)
        for i in range(len(names)):
            clusters = cluster_replicates(counts, samples.superclass, samples.subclass, samples.kmeans[i])
            per_layer_reps[i]["ami"] = clusters.ami
            per_layer_reps[i]["within_superclass_acc"] = clusters.matched_acc
            if correct is not None:
                per_layer_reps[i]["reconstruction_acc"] = mean_replicates(counts, correct[i])
            if head_correct is not None:
                per_layer_reps[i]["head_reconstruction_acc"] = mean_replicates(counts, head_correct[i])
    ood_sets = sorted(name for name in samples.probes if name.startswith("ood/"))
    if "id" in samples.probes:
        id_curve = rep.probe_curve("id")
        for i in range(len(names)):
            per_layer_reps[i]["id_acc"] = id_curve[:, i]
    ood_curve = np.mean([rep.probe_curve(name) for name in ood_sets], axis=0) if ood_sets else None
    if ood_curve is not None:
        for i in range(len(names)):
            per_layer_reps[i]["ood_mean_acc"] = ood_curve[:, i]

    headline: dict[str, np.ndarray] = {}
    selection = summary.get("selection") or {}
    if selection.get("method") == "crossfit" and samples.kmeans is not None:
        # Protocol v3: every replicate repeats the choice on its own resample's halves (commitment.crossfit).
        counts = rep.counts(EVALUATION)
        shares, ward = samples.committed_shares(), samples.ward_by_layer()
        fit = crossfit(counts, samples.superclass, samples.subclass, samples.kmeans, shares, ward)
        headline.update((key, values) for key, values in fit.metrics.items() if summary.get(key) is not None)
    elif summary.get("committed_layer") in index:  # protocol v1/v2: one layer, chosen on the validation split
        layer = str(summary["committed_layer"])
        reps = per_layer_reps[index[layer]]
        headline["committed_ami"] = reps["ami"]
        headline["committed_within_superclass_acc"] = reps["within_superclass_acc"]
        if "reconstruction_acc" in reps:
            headline["committed_reconstruction_acc"] = reps["reconstruction_acc"]
            assert samples.superclass_pred is not None
            right_v2 = samples.superclass_pred[index[layer]] == samples.superclass
            headline["committed_superclass_acc"] = mean_replicates(rep.counts(EVALUATION), right_v2)
        if layer in samples.ward_layers and samples.ward is not None:
            ward_v2 = samples.ward[samples.ward_layers.index(layer), 0]
            clusters = cluster_replicates(rep.counts(EVALUATION), samples.superclass, samples.subclass, ward_v2)
            headline["committed_ward_ami"] = clusters.ami
    best = summary.get("best_layer")
    if best is not None and best in index:
        headline["best_ami"] = per_layer_reps[index[best]]["ami"]
    if samples.head_superclass_pred is not None and summary.get("head_superclass_acc") is not None:
        head_right = samples.head_superclass_pred == samples.superclass
        headline["head_superclass_acc"] = mean_replicates(rep.counts(EVALUATION), head_right)
    if per_layer_reps and "ami" in per_layer_reps[-1]:
        headline["last_ami"] = per_layer_reps[-1]["ami"]
        if "reconstruction_acc" in per_layer_reps[-1]:
            headline["last_reconstruction_acc"] = per_layer_reps[-1]["reconstruction_acc"]
    transfer = summary.get("transfer")
    if transfer is not None:
        distinct = [not layer["transfer"]["same_as_next"] for layer in per_layer]
        if ood_curve is not None and transfer.get("ood_retained") is not None:
            if "ood_retained_mean_curve" in transfer:  # protocol v3: Harun et al.'s mean over the OOD sets
                per_set = [retained_replicates(rep.probe_curve(name), distinct) for name in ood_sets]
                headline["ood_retained"] = np.mean(per_set, axis=0)
                headline["ood_retained_mean_curve"] = retained_replicates(ood_curve, distinct)
            else:  # protocol v1/v2: the mean curve's
                headline["ood_retained"] = retained_replicates(ood_curve, distinct)
        for kind, probe in (("subpop_shift", "shift"), ("subpop_refit", "refit")):
            if probe in samples.probes and (transfer.get("subpopulation_shift") or {}).get(kind):
                headline[f"{kind}_retained"] = retained_replicates(rep.probe_curve(probe), distinct)

    streams = [EVALUATION] if samples.kmeans is not None else []
    record = {
        "method": BOOTSTRAP["method"],
        "level": BOOTSTRAP["level"],
        "unit": BOOTSTRAP["unit"],
        "clusters": BOOTSTRAP["clusters"],
        "seeds": BOOTSTRAP["seeds"],
        "resamples": resamples,
        "seed": seed,
        "digests": {name: rep.digest(name) for name in streams + sorted(samples.probes)},
    }
    # Per-layer replicates are stored as float32 (they are most of the file); intervals come from the stored values.
    per_layer_reps = [{k: v.astype(np.float32) for k, v in reps.items()} for reps in per_layer_reps]
    metrics = list(dict.fromkeys(k for reps in per_layer_reps for k in reps))  # computation order, as results list them
    return Intervals(
        replicates=headline,
        layer_replicates={m: np.stack([reps[m] for reps in per_layer_reps]) for m in metrics},
        n_layers=len(names),
        record=record,
    )


def attach(
    samples: SampleOutputs,
    per_layer: list[dict[str, Any]],
    summary: dict[str, Any],
    resamples: int = int(BOOTSTRAP["resamples"]),
    seed: int = int(BOOTSTRAP["seed"]),
) -> dict[str, Any]:
    """Compute the intervals and put them in place: ``summary.ci95``, each layer's ``ci95`` and the replicates
    the per-sample file keeps. Returns the result's ``uncertainty`` record."""
    found = compute(samples, per_layer, summary, resamples=resamples, seed=seed)
    summary["ci95"] = found.summary
    for entry, layer_ci in zip(per_layer, found.layers(), strict=True):
        if layer_ci:
            entry["ci95"] = layer_ci
        else:
            entry.pop("ci95", None)
    samples.replicates, samples.layer_replicates = found.replicates, found.layer_replicates
    return found.record


def current(result: Result) -> bool:
    """Whether a result's intervals were computed under the current method (or it has none)."""
    record = result.get("uncertainty")
    return record is None or record.get("method") == METHOD


def refresh(result: Result) -> Result:
    """The result with its intervals recomputed under the current method, from its per-sample file alone.

    Only intervals, their replicates and the ``uncertainty`` record change:
    every score is read from the per-sample outputs as stored, so no model,
    data or feature is needed, and the resamples and seed stay the result's own.
    """
    record = result.get("uncertainty")
    if record is None or result.samples is None:
        raise SubclassbenchError(
            f"{result.path or 'result'} has no intervals to recompute (evaluated with --bootstrap 0); "
            "re-run the evaluation with --bootstrap B"
        )
    doc = json.loads(json.dumps(result.doc))  # a copy: the result read stays as it was
    samples = copy.deepcopy(result.samples)
    doc["uncertainty"] = attach(
        samples, doc["layers"], doc["summary"], resamples=int(record["resamples"]), seed=int(record["seed"])
    )
    return Result.from_doc(doc, result.path, samples=samples)


def refresh_file(path: Path, check: bool = False) -> str:
    """Bring one result file's intervals to the current method: ``"current"`` (nothing to do), ``"outdated"``
    (``check``: nothing written) or ``"updated"`` (the JSON and its per-sample file rewritten together)."""
    result = Result.read(path)
    if current(result):
        return "current"
    if check:
        return "outdated"
    refresh(result).write(path)
    return "updated"
