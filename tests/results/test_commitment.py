"""Cross-fitted layer commitment (subclassbench.results.commitment): the halves, the per-layer AMI on a subset,
and the choice made on one half and scored on the other."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.errors import SubclassbenchError
from subclassbench.results.commitment import crossfit, layer_amis
from subclassbench.scoring.commitment import SALT, hash_halves
from subclassbench.scoring.samples import SampleOutputs


def test_the_halves_are_a_salted_hash_order_alternating_within_each_subclass():
    superclass = np.repeat([0, 1], 10)
    subclass = np.tile(np.repeat([0, 1], 5), 2)
    half = hash_halves(superclass, subclass)
    # Pinned with hashlib here: the first stratum's five images in sha256(salt:index) order, alternating.
    rows = sorted(range(5), key=lambda i: hashlib.sha256(f"{SALT}:{i}".encode()).digest())
    assert SALT == "subclassbench/crossfit-halves/v1"
    assert set(np.flatnonzero(half[:5])) == set(rows[0::2])
    for s in (0, 1):
        for c in (0, 1):
            stratum = (superclass == s) & (subclass == c)
            assert half[stratum].sum() == 3  # odd strata: the extra image goes to A
    assert np.array_equal(half, hash_halves(superclass, subclass))  # no randomness


def test_layer_ami_on_a_subset_is_the_mean_over_superclasses_of_sklearn_ami():
    rng = np.random.default_rng(0)
    superclass = np.repeat([0, 1, 2], 40)
    subclass = rng.integers(0, 3, size=120)
    kmeans = np.stack([np.where(rng.uniform(size=120) < 0.7, subclass, rng.integers(0, 3, size=120)) for _ in range(2)])
    rows = rng.uniform(size=120) < 0.5
    expected = [
        np.mean([adjusted_mutual_info_score(subclass[rows & (superclass == s)], layer[rows & (superclass == s)])
                 for s in range(3)])
        for layer in kmeans
    ]  # fmt: skip
    assert layer_amis(superclass, subclass, kmeans, rows) == pytest.approx(expected, abs=1e-9)


def _result(kmeans: np.ndarray, superclass: np.ndarray, subclass: np.ndarray, committed: str) -> SimpleNamespace:
    samples = SampleOutputs(layers=[f"l{i}" for i in range(len(kmeans))], superclass=superclass, subclass=subclass,
                            kmeans=kmeans)  # fmt: skip
    full = layer_amis(superclass, subclass, kmeans, np.ones(len(superclass), dtype=bool))
    k = samples.layers.index(committed)
    summary = {"committed_layer": committed, "committed_ami": float(full[k]),
               "ci95": {"committed_ami": [float(full[k]) - 0.01, float(full[k]) + 0.01]}}  # fmt: skip
    return SimpleNamespace(samples=samples, summary=summary, path="r.json")


def test_a_layer_committed_on_other_images_moves_to_the_one_both_halves_prefer():
    rng = np.random.default_rng(1)
    superclass = np.repeat([0, 1], 200)
    subclass = rng.integers(0, 2, size=400)
    noise = rng.integers(0, 2, size=400)
    good = np.where(rng.uniform(size=400) < 0.9, subclass, noise)  # clusters the subclasses
    poor = np.where(rng.uniform(size=400) < 0.2, subclass, noise)
    kmeans = np.stack([poor, good])
    # Committed on the poor layer (as a validation split of fitted images might): both halves pick the good one.
    fit = crossfit(_result(kmeans, superclass, subclass, "l0"))
    assert (fit.committed, fit.chosen_a, fit.chosen_b, fit.changed) == ("l0", "l1", "l1", 2)
    assert fit.shift > 0.3 and fit.beyond_interval
    # Committed on the good layer: nothing moves.
    same = crossfit(_result(kmeans, superclass, subclass, "l1"))
    assert same.changed == 0 and same.shift == pytest.approx(0.0) and not same.beyond_interval
    assert same.to_dict()["crossfit_ami"] == pytest.approx(same.committed_on_halves)


def test_crossfitting_needs_the_per_sample_clusters():
    with pytest.raises(SubclassbenchError, match="per-sample file's k-means clusters"):
        crossfit(SimpleNamespace(samples=None, summary={"committed_layer": "l0"}, path="r.json"))
