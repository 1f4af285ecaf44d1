"""Linear probes on frozen features (subclassbench.scoring.probes): the recipe of Harun et al., epoch choice on
a holdout, batched equals alone, memory-budgeted groups, and file-backed rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subclassbench.features import matrices
from subclassbench.features.matrices import Matrix
from subclassbench.scoring.probes import ProbeRecipe, fit_probe, fit_probes, holdout_rows

# --------------------------------------------------------------------------- probes


def blobs(n: int, classes: int, dim: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    y = rng.randint(0, classes, n)
    means = np.eye(classes, dim) * 4.0
    return means[y] + spread * rng.randn(n, dim), y


def test_probe_perfect_and_chance():
    x, y = blobs(400, 4, 8, 0.1, 0)
    xt, yt = blobs(200, 4, 8, 0.1, 1)
    perfect = fit_probe(x, y, {"test": (xt, yt)}, 4).scores["test"]
    assert perfect.acc >= 0.99 and perfect.final >= 0.99  # 10 % of the rows are held out from fitting
    rng = np.random.RandomState(2)
    noise, labels = rng.randn(600, 8), rng.randint(0, 4, 600)
    score = fit_probe(noise[:400], labels[:400], {"test": (noise[400:], labels[400:])}, 4).scores["test"]
    assert abs(score.final - 0.25) < 0.12 and abs(score.acc - 0.25) < 0.12  # no signal → chance


def test_probe_epoch_is_chosen_without_the_scored_set():
    """v1 took the best epoch on the scored set (optimistic on noise); v2 chooses on held-out training rows,
    so the chosen epoch cannot depend on the evaluation data at all."""
    rng = np.random.RandomState(5)
    x, y = rng.randn(400, 8), rng.randint(0, 4, 400)
    xt = rng.randn(300, 8)
    fits = [fit_probe(x, y, {"t": (xt, rng.randint(0, 4, 300))}, 4) for _ in range(3)]
    assert len({f.selected_epoch for f in fits}) == 1 and len({f.holdout_acc for f in fits}) == 1
    only_val = fit_probe(x, y, {}, 4)
    assert only_val.selected_epoch == fits[0].selected_epoch
    assert fits[0].n_fit + fits[0].n_holdout == 400 and fits[0].n_holdout == pytest.approx(40, abs=4)


def test_holdout_is_stratified_and_never_empty():
    from subclassbench.scoring.probes import holdout_rows

    labels = np.repeat(np.arange(5), 20)
    held = holdout_rows(labels, 0.1, 0)
    assert held.sum() == 10 and all(held[labels == c].sum() == 2 for c in range(5))
    assert np.array_equal(held, holdout_rows(labels, 0.1, 0))
    with pytest.raises(ValueError, match="enough training rows"):
        holdout_rows(np.arange(3), 0.1, 0)


def test_probe_is_deterministic_and_scale_free():
    x, y = blobs(300, 3, 6, 1.5, 3)
    xt, yt = blobs(150, 3, 6, 1.5, 4)
    a = fit_probe(x, y, {"t": (xt, yt)}, 3).scores["t"]
    b = fit_probe(x, y, {"t": (xt, yt)}, 3).scores["t"]
    c = fit_probe(x * 1000.0 + 5.0, y, {"t": (xt * 1000.0 + 5.0, yt)}, 3).scores["t"]  # standardisation removes it
    assert a == b
    assert c.acc == pytest.approx(a.acc, abs=1e-6)


def test_probe_recipe_is_harun_et_al():
    recipe = ProbeRecipe()
    assert (recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.batch_size, recipe.epochs) == (
        "adamw",
        1e-3,
        0.0,
        128,
        30,
    )
    assert recipe.label_smoothing == 0.1 and recipe.standardize


def test_batched_probes_equal_probes_trained_alone():
    """Layers of different widths trained in one padded, batched program follow the recipe exactly as a
    probe trained alone: same chosen epoch, same held-out accuracy, same predictions."""
    from subclassbench.scoring import probes

    rng = np.random.RandomState(7)
    y, yt = rng.randint(0, 4, 500), rng.randint(0, 4, 200)
    train, test = [], []
    for width in (3, 8, 8, 5):
        means = rng.randn(4, width)
        train.append(means[y] + rng.randn(500, width))
        test.append(means[yt] + rng.randn(200, width))
    together = probes.fit_probes(train, y, {"t": (test, yt)}, 4, predict=("t",))
    for x, xt, fit in zip(train, test, together, strict=True):
        alone = probes.fit_probe(x, y, {"t": (xt, yt)}, 4, predict=("t",))
        assert (alone.selected_epoch, alone.holdout_acc, alone.scores) == (
            fit.selected_epoch,
            fit.holdout_acc,
            fit.scores,
        )
        assert np.array_equal(alone.predictions["t"], fit.predictions["t"])


def test_probe_groups_respect_the_memory_budget():
    from subclassbench.scoring import probes

    budget = 100 * 8 * 4 * 2  # two 8-wide layers of 100 rows
    groups = probes._groups([8, 4, 8, 8, 2], 100, budget)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]
    assert all(len(g) * max([8, 4, 8, 8, 2][i] for i in g) * 100 * 4 <= budget for g in groups)
    assert groups[0] == [4, 1]  # narrowest first, so padding wastes least
    assert probes.group_bytes(torch.device("cpu")) == probes.GROUP_BYTES


# --------------------------------------------------------------------------- probes on file-backed rows


def test_probes_on_lazy_rows_equal_probes_on_arrays(tmp_path, monkeypatch):
    """Probes stacked from file-backed rows a block at a time predict exactly what in-memory probes predict."""
    monkeypatch.setattr(matrices, "BLOCK_BYTES", 4 * 9 * 13)  # 13-row blocks of the widest layer
    rng = np.random.RandomState(3)
    y, yt = rng.randint(0, 3, 300), rng.randint(0, 3, 90)
    train, test, lazy_train, lazy_test = [], [], [], []
    for i, width in enumerate((4, 9, 6)):
        means = rng.randn(3, width) * 2
        a = (means[y] + rng.randn(300, width)).astype(np.float32)
        b = (means[yt] + rng.randn(90, width)).astype(np.float32)
        both = np.concatenate([a, b])
        np.save(tmp_path / f"{i}.npy", both)
        train.append(a)
        test.append(b)
        lazy_train.append(Matrix(tmp_path / f"{i}.npy").rows(np.arange(300)))
        lazy_test.append(Matrix(tmp_path / f"{i}.npy").rows(np.arange(300, 390)))
    eager = fit_probes(train, y, {"t": (test, yt)}, 3, predict=("t",))
    lazy = fit_probes(lazy_train, y, {"t": (lazy_test, yt)}, 3, predict=("t",))
    for a, b in zip(eager, lazy, strict=True):
        assert (a.selected_epoch, a.holdout_acc, a.scores) == (b.selected_epoch, b.holdout_acc, b.scores)
        assert np.array_equal(a.predictions["t"], b.predictions["t"])


def test_a_layer_over_the_group_budget_is_streamed_and_trains_bit_for_bit_as_stacked(tmp_path, monkeypatch):
    """A lone layer whose training rows exceed the budget is read a minibatch at a time (its fit rows are
    never stacked): the same epochs, accuracies and predictions as from the stacked tensor, from a file or
    an array. benchmarks/bench_memory.py measures what it saves."""
    from subclassbench.scoring import probes

    rng = np.random.RandomState(4)
    y, yt = rng.randint(0, 4, 2000), rng.randint(0, 4, 200)
    width = 300
    means = rng.randn(4, width)
    x = (means[y] + 2 * rng.randn(2000, width)).astype(np.float32)
    xt = (means[yt] + 2 * rng.randn(200, width)).astype(np.float32)
    x[:, 7] = 1.5  # a constant unit: standardised to zero on both paths
    np.save(tmp_path / "x.npy", np.concatenate([x, xt]))
    lazy = (Matrix(tmp_path / "x.npy").rows(np.arange(2000)), Matrix(tmp_path / "x.npy").rows(np.arange(2000, 2200)))
    recipe = probes.ProbeRecipe(epochs=4)
    stacked = fit_probes([x], y, {"t": ([xt], yt)}, 4, recipe, predict=("t",))[0]
    stacks: list[bool] = []
    original = probes._stack
    monkeypatch.setattr(probes, "_stack", lambda *a, **k: stacks.append(k.get("with_train", True)) or original(*a, **k))
    monkeypatch.setattr(probes, "GROUP_BYTES", 2000 * width * 4 - 1)  # this layer alone is over it
    for source in ((x, xt), lazy):
        streamed = fit_probes([source[0]], y, {"t": ([source[1]], yt)}, 4, recipe, predict=("t",))[0]
        assert stacks == [False], "the over-budget layer's fit rows were stacked"
        stacks.clear()
        assert (streamed.selected_epoch, streamed.holdout_acc, streamed.scores) == (
            stacked.selected_epoch, stacked.holdout_acc, stacked.scores,
        )  # fmt: skip
        assert np.array_equal(streamed.predictions["t"], stacked.predictions["t"])
    monkeypatch.setattr(probes, "GROUP_BYTES", 2000 * width * 4)  # at the budget: stacked, as before
    fit_probes([x], y, {"t": ([xt], yt)}, 4, recipe)
    assert stacks == [True]


def test_classes_of_two_rows_each_give_up_one_at_half():
    labels = np.repeat(np.arange(10), 2)
    held = holdout_rows(labels, 0.5, seed=0)
    assert held.sum() == 10 and all(held[labels == c].sum() == 1 for c in range(10))


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1])
def test_a_holdout_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError) as raised:
        ProbeRecipe(holdout_fraction=fraction).check()
    assert str(raised.value) == "probe recipe: holdout_fraction must lie strictly between 0 and 1"
