"""Layer commitment without training images, measured on protocol v2 results (the study behind protocol v3).

Protocol v2 commits the layer whose AMI is highest on the task's validation split (§3.5). For CIFAR-10 tasks
that split is carved from CIFAR-10 train, and every network trained on CIFAR-10 has seen it: the layer is
then chosen on images the network fitted. This module measures what that costs, from a result's per-sample
file alone (no features): the evaluation split is cut into two fixed halves by a salted hash, stratified by
subclass; the layer is chosen on one half and scored on the other, both ways, and the two scores are averaged
(cross-fitting). Beside it, the validation-committed layer scored on the same halves, so the two estimates
differ only in how the layer was chosen.

The k-means clusters are the ones the protocol fitted on the whole evaluation split; fitting them uses no
label, so choosing a layer on half A's labels and scoring it on half B's is an honest hold-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result
from subclassbench.scoring.commitment import hash_halves
from subclassbench.uncertainty.bootstrap import cluster_replicates


def layer_amis(superclass: np.ndarray, subclass: np.ndarray, kmeans: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each layer's AMI (mean over superclasses, as the protocol's) on the images where ``rows`` is true."""
    counts = rows.astype(np.int64)[None, :]
    return np.array(
        [cluster_replicates(counts, superclass, subclass, layer, centre_ami=False).ami[0] for layer in kmeans]
    )


@dataclass(frozen=True)
class Crossfit:
    """One result's layer commitment, as shipped (validation split) and cross-fitted on the evaluation split."""

    layers: list[str]
    committed: str  # the validation-committed layer
    chosen_a: str  # the layer chosen on half A (scored on B)
    chosen_b: str  # the layer chosen on half B (scored on A)
    committed_ami: float  # the shipped committed AMI (whole evaluation split)
    committed_ci95: tuple[float, float] | None
    committed_on_halves: float  # the committed layer's AMI, mean of its two halves
    crossfit_ami: float  # mean of (chosen on A, scored on B) and (chosen on B, scored on A)

    @property
    def changed(self) -> int:
        """How many of the two cross-fitted choices differ from the validation-committed layer (0, 1 or 2)."""
        return int(self.chosen_a != self.committed) + int(self.chosen_b != self.committed)

    @property
    def shift(self) -> float:
        """Cross-fitted minus validation-committed AMI, both on the same halves."""
        return self.crossfit_ami - self.committed_on_halves

    @property
    def beyond_interval(self) -> bool:
        """Whether the cross-fitted AMI lies outside the shipped committed AMI's 95% interval, once the halves'
        own offset (committed_on_halves − committed_ami) is taken out."""
        if self.committed_ci95 is None:
            return False
        moved = self.committed_ami + self.shift
        return not self.committed_ci95[0] <= moved <= self.committed_ci95[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "committed": self.committed,
            "chosen_a": self.chosen_a,
            "chosen_b": self.chosen_b,
            "changed": self.changed,
            "committed_ami": self.committed_ami,
            "committed_ci95": list(self.committed_ci95) if self.committed_ci95 else None,
            "committed_on_halves": self.committed_on_halves,
            "crossfit_ami": self.crossfit_ami,
            "shift": self.shift,
            "beyond_interval": self.beyond_interval,
        }


def crossfit(result: Result) -> Crossfit:
    """Cross-fitted layer commitment of ``result`` from its per-sample file."""
    samples = result.samples
    if (result.summary.get("selection") or {}).get("method") == "crossfit":
        raise SubclassbenchError(
            f"{result.path}: already cross-fitted (protocol v3); this measurement compares a protocol v2 result's "
            "validation-committed layer with cross-fitting"
        )
    committed = result.summary.get("committed_layer")
    if samples is None or samples.kmeans is None or committed is None:
        raise SubclassbenchError(
            f"{result.path}: cross-fitting needs the per-sample file's k-means clusters and a committed layer"
        )
    layers = list(samples.layers)
    half = hash_halves(samples.superclass, samples.subclass)
    on_a = layer_amis(samples.superclass, samples.subclass, samples.kmeans, half)
    on_b = layer_amis(samples.superclass, samples.subclass, samples.kmeans, ~half)
    a, b = int(np.argmax(on_a)), int(np.argmax(on_b))  # first of ties: the shallowest, as §3.5
    k = layers.index(str(committed))
    ci = (result.summary.get("ci95") or {}).get("committed_ami")
    return Crossfit(
        layers=layers,
        committed=str(committed),
        chosen_a=layers[a],
        chosen_b=layers[b],
        committed_ami=float(result.summary["committed_ami"]),
        committed_ci95=(float(ci[0]), float(ci[1])) if ci else None,
        committed_on_halves=float((on_a[k] + on_b[k]) / 2),
        crossfit_ami=float((on_b[a] + on_a[b]) / 2),
    )
