"""Protocol v3's layer commitment (subclassbench.scoring.commitment): the layer chosen on one hash half of the
evaluation split and scored on the other, every committed metric read that way, each bootstrap replicate
repeating the choice, and the record of whether the selection images were seen in training."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from subclassbench.scoring.commitment import commit, committed_layer_names, crossfit, exposure, hash_halves
from subclassbench.uncertainty.bootstrap import cluster_replicates, stratified_counts, with_estimate


def _data(seed: int = 0, n: int = 240, keep: tuple[float, ...] = (0.3, 0.45, 0.6, 0.75)) -> tuple[np.ndarray, ...]:
    """Three superclasses of three subclasses; layer i keeps the true subclass with probability keep[i]."""
    rng = np.random.default_rng(seed)
    layers = len(keep)
    superclass = np.repeat([0, 1, 2], n // 3)
    subclass = rng.integers(0, 3, size=n)
    kmeans = np.stack([np.where(rng.uniform(size=n) < p, subclass, rng.integers(0, 3, size=n)) for p in keep])
    correct = rng.uniform(size=(layers, n)) < 0.6
    right = rng.uniform(size=(layers, n)) < 0.9
    return superclass, subclass, kmeans, correct, right


def _shares(correct, right) -> dict:
    return {"committed_reconstruction_acc": correct, "committed_superclass_acc": right}


def _ami(superclass, subclass, labels, rows) -> float:
    return float(
        np.mean(
            [
                adjusted_mutual_info_score(subclass[rows & (superclass == s)], labels[rows & (superclass == s)])
                for s in np.unique(superclass)
            ]
        )
    )


def _matched(superclass, subclass, labels, rows) -> float:
    hits = 0
    for s in np.unique(superclass):
        keep = rows & (superclass == s)
        table = contingency_matrix(subclass[keep], labels[keep])
        r, c = linear_sum_assignment(table, maximize=True)
        hits += table[r, c].sum()
    return hits / rows.sum()


def test_the_estimate_is_chosen_on_one_half_and_scored_on_the_other_as_sklearn_computes_it():
    superclass, subclass, kmeans, correct, right = _data()
    names = [f"l{i}" for i in range(len(kmeans))]
    half = hash_halves(superclass, subclass)
    on_a = [_ami(superclass, subclass, k, half) for k in kmeans]
    on_b = [_ami(superclass, subclass, k, ~half) for k in kmeans]
    a, b = int(np.argmax(on_a)), int(np.argmax(on_b))
    out = commit(names, superclass, subclass, kmeans, _shares(correct, right), "test")
    assert out["committed_layers"] == [names[a], names[b]]
    assert out["committed_ami"] == pytest.approx((on_b[a] + on_a[b]) / 2, abs=1e-12)
    assert out["committed_within_superclass_acc"] == pytest.approx(
        (_matched(superclass, subclass, kmeans[a], ~half) + _matched(superclass, subclass, kmeans[b], half)) / 2
    )
    assert out["committed_reconstruction_acc"] == pytest.approx(
        (correct[a][~half].mean() + correct[b][half].mean()) / 2
    )
    assert out["committed_superclass_acc"] == pytest.approx((right[a][~half].mean() + right[b][half].mean()) / 2)
    assert out["committed_gap"] == pytest.approx((max(on_a) + max(on_b)) / 2 - out["committed_ami"])
    assert out["selection"]["per_layer_ami"]["A"] == pytest.approx(on_a)
    assert out["selection"]["halves"] == {"A": int(half.sum()), "B": int((~half).sum())}


def test_two_halves_that_disagree_name_both_layers():
    superclass, subclass, kmeans, _, _ = _data()
    half = hash_halves(superclass, subclass)
    # Layer 0 is perfect on half A only, layer 1 on half B only: each half picks the layer that fails the other.
    noise = np.random.default_rng(1).integers(0, 3, size=len(subclass))
    kmeans = np.stack([np.where(half, subclass, noise), np.where(half, noise, subclass)])
    out = commit(["x", "y"], superclass, subclass, kmeans, _shares(None, None), "test")
    assert out["committed_layers"] == ["x", "y"] and out["committed_layer"] == "x / y"
    assert committed_layer_names(out) == ["x", "y"]
    assert out["committed_ami"] < 0.1  # each choice is scored where it is noise: no optimism survives
    assert out["committed_gap"] > 0.8
    assert out["committed_reconstruction_acc"] is None and out["committed_superclass_acc"] is None


def test_each_bootstrap_replicate_repeats_the_choice_on_its_own_resample():
    # Layers 2 and 3 close: resamples disagree about which is best.
    superclass, subclass, kmeans, correct, right = _data(seed=3, keep=(0.3, 0.45, 0.7, 0.7))
    counts = with_estimate(stratified_counts(superclass, 200, 0, "evaluation"))
    fit = crossfit(counts, superclass, subclass, kmeans, _shares(correct, right))
    half = hash_halves(superclass, subclass)
    for r in (0, 5, 17, 123):
        row = counts[r : r + 1]
        raw_a = [cluster_replicates(row * half, superclass, subclass, k).raw_ami[0] for k in kmeans]
        raw_b = [cluster_replicates(row * ~half, superclass, subclass, k).raw_ami[0] for k in kmeans]
        a, b = int(np.argmax(raw_a)), int(np.argmax(raw_b))
        assert (fit.chosen[0][r], fit.chosen[1][r]) == (a, b)
        recon = ((row * ~half) @ correct[a] / (row * ~half).sum() + (row * half) @ correct[b] / (row * half).sum()) / 2
        assert fit.metrics["committed_reconstruction_acc"][r] == pytest.approx(recon[0])
    assert len({int(c) for c in fit.chosen[0]}) > 1  # the choice does vary across replicates here
    assert fit.metrics["committed_ami"][0] == pytest.approx(
        commit([str(i) for i in range(4)], superclass, subclass, kmeans, _shares(correct, right), "t")["committed_ami"]
    )


def test_ward_is_read_on_the_halves_at_the_estimates_choice():
    superclass, subclass, kmeans, _, _ = _data(seed=4)
    ward = {i: np.roll(k, 1) for i, k in enumerate(kmeans)}
    out = commit([f"l{i}" for i in range(4)], superclass, subclass, kmeans, None, "test", ward)
    half = hash_halves(superclass, subclass)
    a, b = (int(n[1:]) for n in out["committed_layers"])
    expected = (_ami(superclass, subclass, ward[a], ~half) + _ami(superclass, subclass, ward[b], half)) / 2
    assert out["committed_ward_ami"] == pytest.approx(expected, abs=1e-12)
    assert "committed_ward_ami" not in commit(["a"] * 4, superclass, subclass, kmeans, None, "t", {0: kmeans[0]})


DECLARED = "declared by the submitter (model.yaml training.saw_evaluation_split)"
CARD = "the encoder's training card: trained on t's '{}' split"
UNRECORDED = "not recorded: the encoder's weights carry no training record"


@pytest.mark.parametrize(
    ("declared", "card", "trained", "split", "seen", "basis"),
    [
        (True, None, True, "test", True, DECLARED),  # the submitter's word comes first
        (False, {"task": "t", "train_split": {"name": "test"}}, True, "test", False, DECLARED),
        (None, {"task": "t", "train_split": {"name": "train"}}, True, "test", False, CARD.format("train")),
        (None, {"task": "t", "train_split": {"name": "test"}}, True, "test", True, CARD.format("test")),
        (None, None, False, "test", False, "untrained: the encoder's random initialisation"),
        # Pretrained weights with no record: not known; a malformed card is no record.
        (None, None, True, "test", None, UNRECORDED),
        (None, {"train_split": "train"}, True, "test", None, UNRECORDED),
    ],
)
def test_whether_the_selection_images_were_seen_in_training(declared, card, trained, split, seen, basis):
    # The basis is printed in every result (summary.selection.seen_basis) and read by people: pinned word for word.
    assert exposure(declared, card, trained, split) == (seen, basis)


def test_a_v2_summary_names_its_one_committed_layer():
    assert committed_layer_names({"committed_layer": "layer3.1"}) == ["layer3.1"]
    assert committed_layer_names({"committed_layers": ["a", "a"], "committed_layer": "a"}) == ["a"]
    assert committed_layer_names({}) == []
