"""Does a nominal 95% bootstrap interval cover the truth 95% of the time? Synthetic hierarchies with known
population values, drawn many times.

Each draw samples evaluation images from a known population, computes the
point estimate and the interval exactly as a result does (``bootstrap.py``,
stratified, percentile), and records whether the interval holds the
population value. Three kinds of metric, one per shape of statistic:

* **AMI** (mean over superclasses): in superclass s, an image's cluster is its
  subclass, relabelled with probability ``flip[s]`` — a fixed assignment rule,
  which is what reusing stored assignments estimates. The population value is
  the normalised mutual information of the joint distribution (the expected
  mutual information of a finite sample vanishes as n grows).
  :data:`NEAR_CHANCE` is the same rule with four equal subclasses and clusters
  that are mostly wrong: a population AMI of 0.04, where an untrained or weak
  encoder's scores sit.
* **accuracy** (a per-image mean, e.g. reconstruction accuracy): Bernoulli(p).
* **% retained** (Harun et al.'s ratio of a curve's last point to its
  maximum): per-layer Bernoulli accuracies with a known curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from subclassbench.uncertainty.bootstrap import (
    cluster_replicates,
    interval,
    mean_replicates,
    retained_replicates,
    stratified_counts,
    with_estimate,
)


@dataclass(frozen=True)
class Hierarchy:
    """A known population: per superclass, subclass weights and the probability an image's cluster is wrong."""

    subclass_weights: tuple[tuple[float, ...], ...] = ((0.5, 0.5), (0.3, 0.7), (0.25, 0.25, 0.5))
    flip: tuple[float, ...] = (0.10, 0.20, 0.15)
    images_per_superclass: int = 200
    accuracy: float = 0.8
    curve: tuple[float, ...] = (0.55, 0.75, 0.70, 0.65)  # a tunnel: best at layer 1, penultimate at 0.65

    def joint(self, s: int) -> np.ndarray:
        """P(subclass, cluster) in superclass s: the cluster is the subclass, or uniformly another one."""
        w = np.asarray(self.subclass_weights[s])
        k = len(w)
        confusion = np.full((k, k), self.flip[s] / (k - 1))
        np.fill_diagonal(confusion, 1 - self.flip[s])
        joint: np.ndarray = w[:, None] * confusion
        return joint

    def population_ami(self) -> float:
        values = []
        for s in range(len(self.flip)):
            p = self.joint(s)
            a, b = p.sum(1), p.sum(0)
            cell = p > 0  # 0 · log 0 = 0: a perfect clustering has empty off-diagonal cells
            mi = float((p[cell] * np.log(p[cell] / np.outer(a, b)[cell])).sum())
            h = (-(a * np.log(a)).sum() - (b * np.log(b)).sum()) / 2
            values.append(mi / h)
        return float(np.mean(values))

    def population_retained(self) -> float:
        curve = np.asarray(self.curve)
        best = int(np.argmax(curve))
        tunnel = best < len(curve) - 1 and curve[best] > curve[-1]
        return float(100 * curve[-1] / curve[best]) if tunnel else 100.0


# Clusters barely better than chance (population AMI 0.039): 4 superclasses of 4 equal subclasses, 200 images each,
# an image's cluster wrong with probability 0.6 (chance: 0.75), the size of the Tiny ImageNet BREEDS tasks' cells.
NEAR_CHANCE = Hierarchy(subclass_weights=((0.25,) * 4,) * 4, flip=(0.6,) * 4)
# The same with clusters independent of subclasses (wrong w.p. 0.75 = chance): population AMI 0.
AT_CHANCE = Hierarchy(subclass_weights=((0.25,) * 4,) * 4, flip=(0.75,) * 4)

# The hierarchies the calibration reports (docs/uncertainty.md, benchmarks/bench_bootstrap.py).
HIERARCHIES = {
    "100 per superclass": Hierarchy(images_per_superclass=100),
    "400 per superclass": Hierarchy(images_per_superclass=400),
    "near chance": NEAR_CHANCE,
    "at chance": AT_CHANCE,
}


@dataclass
class Coverage:
    metric: str
    draws: int
    covered: int
    mean_width: float

    @property
    def rate(self) -> float:
        return self.covered / self.draws


def _draw(h: Hierarchy, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    superclass, subclass, cluster = [], [], []
    for s in range(len(h.flip)):
        p = h.joint(s).ravel()
        cells = rng.choice(len(p), size=h.images_per_superclass, p=p)
        k = len(h.subclass_weights[s])
        superclass.append(np.full(len(cells), s))
        subclass.append(cells // k)
        cluster.append(cells % k)
    return np.concatenate(superclass), np.concatenate(subclass), np.concatenate(cluster)


def measure(h: Hierarchy, draws: int, resamples: int, seed: int = 0, centre_ami: bool = True) -> list[Coverage]:
    """Coverage of the AMI, accuracy and % retained intervals over ``draws`` seeded samples of ``h``
    (``centre_ami=False``: the earlier, uncentred AMI replicates, on the same draws)."""
    rng = np.random.default_rng(seed)
    truth = {"ami": h.population_ami(), "accuracy": h.accuracy, "retained": h.population_retained()}
    covered = dict.fromkeys(truth, 0)
    widths: dict[str, list[float]] = {k: [] for k in truth}
    for d in range(draws):
        superclass, subclass, cluster = _draw(h, rng)
        n = len(superclass)
        correct = rng.random(n) < h.accuracy
        curve = rng.random((n, len(h.curve))) < np.asarray(h.curve)[None, :]
        counts = with_estimate(stratified_counts(superclass, resamples, seed + d, "evaluation"))
        found = {
            "ami": interval(cluster_replicates(counts, superclass, subclass, cluster, centre_ami).ami),
            "accuracy": interval(mean_replicates(counts, correct)),
            "retained": interval(retained_replicates(mean_replicates(counts, curve), [True] * len(h.curve))),
        }
        for key, (low, high) in found.items():
            covered[key] += low <= truth[key] <= high
            widths[key].append(high - low)
    return [Coverage(k, draws, covered[k], float(np.mean(widths[k]))) for k in truth]
