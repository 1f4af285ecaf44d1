"""Statistics across seeds, the verdict rule, and the learning-order and image statistics of Pliushch et al.

Seeds are the unit of replication: each seed's number carries its own bootstrap interval over the test
images (from its result file), and across seeds a claim reports mean ± std, a t-interval for the mean,
and for two arms trained with the same seeds the paired difference with Wilcoxon's signed-rank test
and Cliff's δ, as Harun et al. (2024) report their comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage, stats

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"


@dataclass(frozen=True)
class SeedSummary:
    values: tuple[float, ...]
    mean: float
    std: float  # sample standard deviation (ddof 1); 0 for one seed
    low: float  # 95% t-interval for the mean over seeds (the mean itself for one seed)
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "mean": self.mean, "std": self.std, "ci95_mean": [self.low, self.high]}

    def text(self, spec: str = ".3f") -> str:
        if len(self.values) == 1:
            return f"{self.mean:{spec}} (1 seed)"
        plain = spec.lstrip("+")  # a sign on the mean and the interval, never on the spread
        return f"{self.mean:{spec}} ± {self.std:{plain}} [{self.low:{spec}}, {self.high:{spec}}]"


def seed_summary(values: Sequence[float]) -> SeedSummary:
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return SeedSummary(tuple(map(float, x)), mean, 0.0, mean, mean)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1)) * std / np.sqrt(len(x))
    return SeedSummary(tuple(map(float, x)), mean, std, mean - half, mean + half)


def cliffs_delta(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """P(a > b) − P(a < b) over all pairs (Cliff 1993): +1 when every value of ``a`` beats every one of ``b``."""
    x, y = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[None, :]
    return float(np.sign(x - y).mean())


@dataclass(frozen=True)
class Paired:
    """``a − b`` for two arms trained with the same seeds."""

    difference: SeedSummary
    wilcoxon_p: float | None  # two-sided, exact; None when every difference is zero
    cliffs_delta: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference.to_dict(),
            "wilcoxon_p": self.wilcoxon_p,
            "cliffs_delta": self.cliffs_delta,
        }

    def text(self, spec: str = "+.3f") -> str:
        p = "n/a" if self.wilcoxon_p is None else f"{self.wilcoxon_p:.3g}"
        return f"{self.difference.text(spec)}; Wilcoxon p = {p}, Cliff's δ = {self.cliffs_delta:+.2f}"


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired arms need one value per seed each")
    diff = x - y
    p = None
    if np.any(diff != 0):
        p = float(stats.wilcoxon(x, y, method="exact" if len(x) <= 50 else "auto").pvalue)
    return Paired(seed_summary(diff), p, cliffs_delta(x, y))


def direction_verdict(difference: SeedSummary, expected_sign: int) -> tuple[str, str]:
    """The verdict on a direction the paper reports, from per-seed differences.

    Reproduced: every seed's difference has the paper's sign and the t-interval of the mean excludes
    zero. Partly: the mean has the paper's sign but a seed disagrees or the interval holds zero. Not
    reproduced: the mean has the other sign (or is zero)."""
    values = np.asarray(difference.values) * expected_sign
    mean = difference.mean * expected_sign
    low = min(difference.low * expected_sign, difference.high * expected_sign)
    n = len(values)
    if mean > 0 and np.all(values > 0) and low > 0:
        return REPRODUCED, f"all {n} seeds in the paper's direction, 95% interval of the mean excludes 0"
    if mean > 0:
        why = "a seed goes the other way" if np.any(values <= 0) else "the 95% interval of the mean includes 0"
        return PARTLY, f"the mean is in the paper's direction but {why} ({n} seeds)"
    return NOT_REPRODUCED, f"the mean difference goes against the paper's direction ({n} seeds)"


# --------------------------------------------------------------------------- rules a null cannot pass


@dataclass(frozen=True)
class AboveControl:
    """An arm against its negative control, paired by seed: above it when the 95% t-interval of the mean
    per-seed difference lies above zero (and, judged with others, its Holm-adjusted p is below 0.05)."""

    control: str  # which control, e.g. "untrained"
    difference: SeedSummary  # arm − control, per seed
    p_one_sided: float  # paired t-test of "arm − control > 0"

    @property
    def above(self) -> bool:
        return bool(self.difference.low > 0)

    def text(self, spec: str = "+.3f") -> str:
        return f"{self.control}: {self.difference.text(spec)}"

    def to_dict(self) -> dict[str, Any]:
        return {"control": self.control, "difference": self.difference.to_dict(), "p_one_sided": self.p_one_sided,
                "above": self.above}  # fmt: skip


def above_control(arm: Sequence[float], control: Sequence[float], kind: str) -> AboveControl:
    """``arm`` against ``control`` seed for seed (a control without seeds, such as raw pixels, repeats its one
    value). The rule "above chance" becomes this: a network that learned nothing is the chance level."""
    x, y = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    if y.shape != x.shape:
        y = np.broadcast_to(y, x.shape) if y.size == 1 else y
    if x.shape != y.shape:
        raise ValueError("an arm and its control need one value per seed each")
    diff = x - y
    if len(diff) < 2 or float(np.std(diff)) == 0.0:
        p = 0.0 if np.all(diff > 0) else 1.0
    else:
        p = float(stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue)
    return AboveControl(kind, seed_summary(diff), p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of p-values judged together, in their order: the family-wise
    error of calling any of them significant at 0.05 stays at 0.05."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def above_all_controls(judged: Sequence[AboveControl]) -> bool:
    """Every comparison's interval above zero and, with Holm over them, every adjusted p below 0.05."""
    if not judged:
        return False
    return all(c.above for c in judged) and all(p < 0.05 for p in holm([c.p_one_sided for c in judged]))


# An arm must have learned its own task before what it keeps of another is compared: its accuracy on its
# training labels at least half-way from chance to perfect. Shown in the report beside the comparison.
GATE_FRACTION = 0.5


def accuracy_gate(accuracies: Sequence[float], chance: float) -> tuple[bool, float]:
    """(passed, threshold): whether the mean accuracy over seeds reaches ``chance + GATE_FRACTION·(1 − chance)``."""
    threshold = chance + GATE_FRACTION * (1 - chance)
    return float(np.mean(accuracies)) >= threshold, threshold


def combine(verdicts: Sequence[str]) -> str:
    """One verdict for several parts of a claim: reproduced only if every part is."""
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return PARTLY


# --------------------------------------------------------------------------- learning order (Pliushch et al.)


def learned_at(log: np.ndarray) -> np.ndarray:
    """Per sample, the first epoch (1-based) from which a network classifies it right at every later epoch.

    ``log`` is epochs × samples (bool). A sample wrong at the last epoch gets ``epochs + 1``: not learned."""
    epochs = log.shape[0]
    # Walk back from the last epoch: a sample stays "learned" while every epoch from here on is right.
    stays = np.flip(np.logical_and.accumulate(np.flip(log, axis=0), axis=0), axis=0)
    first: np.ndarray = np.where(stays.any(axis=0), stays.argmax(axis=0) + 1, epochs + 1)
    return first.astype(np.int64)


def image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of ``images`` (N × C × H × W, any range): the order Pliushch et al. relate to.

    * ``entropy``: Shannon entropy (bits) of the grey-level histogram, 32 bins over the image's range
      set by the whole set (so a flat image has entropy 0);
    * ``edges``: mean Sobel gradient magnitude of the grey image, per pixel;
    * ``contrast``: standard deviation of the grey levels.
    """
    grey = np.asarray(images, dtype=np.float64).mean(axis=1)  # N × H × W
    low, high = float(grey.min()), float(grey.max())
    scaled = (grey - low) / (high - low) if high > low else np.zeros_like(grey)
    bins = np.minimum((scaled * 32).astype(np.int64), 31).reshape(len(grey), -1)
    counts = np.stack([np.bincount(row, minlength=32) for row in bins]).astype(np.float64)
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
    # One image at a time: a Sobel filter over the stacked array would also smooth across images.
    edges = np.array(
        [np.hypot(ndimage.sobel(im, 1, mode="nearest"), ndimage.sobel(im, 0, mode="nearest")).mean() for im in scaled]
    )
    return {"entropy": entropy, "edges": edges, "contrast": scaled.std(axis=(1, 2))}


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's ρ, or None when either side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(stats.spearmanr(a, b).statistic)
