"""Memory that does not grow with the dataset (issue 16, item 4): features streamed into the cache as they are
extracted, scoring reading one layer (or a block of rows) at a time, and the pieces that make it exact."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from subclassbench.encoders.base import Encoder
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.evaluation.pipeline import degenerate_flags
from subclassbench.features import extraction as features_module
from subclassbench.features import matrices
from subclassbench.features.cache import FeatureCache
from subclassbench.features.extraction import ExtractionContext, LayerFeatures, extract_cached
from subclassbench.features.matrices import Matrix, Rows, all_finite, column_moments
from subclassbench.scoring.clusterability import score_layers
from subclassbench.scoring.probes import fit_probes
from subclassbench.tasks.task import load_task

N_LAYERS, WIDTH = 18, 256


def wide_encoder() -> Encoder:
    """An 18-layer stand-in: each layer maps the flattened 8×8 digit to 256 units (ResNet-like widths
    matter less than the count: memory must not scale with layers × images)."""
    torch.manual_seed(0)
    blocks = nn.ModuleList([nn.Linear(64, WIDTH) for _ in range(N_LAYERS)])

    class Wide(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = blocks

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return torch.stack([block(flat) for block in self.blocks]).mean(0)

    model = Wide()
    modules = {f"blocks.{i}": block for i, block in enumerate(blocks[:-1])}
    return Encoder("builtin:wide_standin", "builtin", "wide_standin", None, model, model, modules, Preprocessing(None))


@pytest.fixture(scope="module")
def digits_train():
    return load_task("digits-5").load_split("train")


def _peak(run: Callable[[], object]) -> int:
    """Peak bytes numpy (and Python) allocate while ``run`` runs; numpy reports its buffers to tracemalloc."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_extraction_streams_into_the_cache_without_holding_the_split(digits_train, tmp_path):
    """Every layer's features of the split go to disk batch by batch: extraction holds a batch of every
    layer, not the split's matrices (which the in-memory path must hold whole)."""
    context = ExtractionContext.create(wide_encoder(), digits_train, None, batch_size=32)
    total = len(digits_train) * N_LAYERS * WIDTH * 4
    streamed = _peak(lambda: extract_cached(context, FeatureCache(tmp_path / "cache")))
    held = _peak(lambda: extract_cached(context, None))
    assert held >= total  # the in-memory path: every layer of every row
    assert streamed < total / 8, (streamed, total)
    cached = extract_cached(context, FeatureCache(tmp_path / "cache"))
    assert all(isinstance(layer.source, Path) for layer in cached)  # served as files, read when scored
    in_memory = extract_cached(context, None)
    for a, b in zip(cached, in_memory, strict=True):
        assert a.name == b.name and a.pooling == b.pooling and np.array_equal(a.features, b.features)


def test_scoring_reads_one_layer_at_a_time(digits_train, tmp_path):
    """Clusterability with reconstruction over file-backed features does not grow with the number of layers
    (each extra layer adds far less than its bytes), and scores exactly what in-memory features score."""
    encoder = wide_encoder()
    test = digits_train.task.load_split("test")
    cache = FeatureCache(tmp_path / "cache")
    on_disk = [extract_cached(ExtractionContext.create(encoder, s, None), cache) for s in (test, digits_train)]

    def scored(n_layers: int) -> list:
        return score_layers(on_disk[0][:n_layers], test, train=(on_disk[1][:n_layers], digits_train))

    scored(2)  # first calls import and set up what later calls reuse
    few, found = _peak(lambda: scored(2)), []
    many = _peak(lambda: found.append(scored(N_LAYERS)))
    layer_bytes = (len(test) + len(digits_train)) * WIDTH * 4
    assert many - few < 0.25 * (N_LAYERS - 2) * layer_bytes, (few, many, layer_bytes)
    in_memory = [[LayerFeatures(f.name, f.depth, f.pooling, f.features) for f in fs] for fs in on_disk]
    reference = score_layers(in_memory[0], test, train=(in_memory[1], digits_train))
    assert [c.scores for c in found[0]] == [c.scores for c in reference]


def test_entry_writer_writes_what_np_save_writes(tmp_path):
    cache = FeatureCache(tmp_path)
    x = np.random.RandomState(0).randn(103, 7).astype(np.float32)
    key = "ab" * 32
    fields = {"layer": "a"}
    with cache.writer(key, len(x)) as writer:
        for start in range(0, len(x), 10):
            writer.append(x[start : start + 10])
        writer.commit(fields, {"pooling": "none"})
    reference = tmp_path / "reference.npy"
    np.save(reference, x)
    array_path = tmp_path / key[:2] / f"{key}.npy"
    assert array_path.read_bytes() == reference.read_bytes()
    assert not list((tmp_path / key[:2]).glob(".*.tmp"))


def test_an_interrupted_entry_leaves_nothing(tmp_path):
    """A run killed or failing mid-extraction leaves no entry and no temporary file; a short entry is refused."""
    cache = FeatureCache(tmp_path)
    key = "cd" * 32
    with pytest.raises(KeyboardInterrupt), cache.writer(key, 20) as writer:
        writer.append(np.zeros((10, 3), dtype=np.float32))
        raise KeyboardInterrupt
    with pytest.raises(ValueError, match="10 of its 20 rows"), cache.writer(key, 20) as writer:
        writer.append(np.zeros((10, 3), dtype=np.float32))
        writer.commit({}, {"pooling": "none"})
    with pytest.raises(ValueError, match="does not fit"), cache.writer(key, 20) as writer:
        writer.append(np.zeros((10, 3), dtype=np.float32))
        writer.append(np.zeros((10, 4), dtype=np.float32))
    assert cache.locate(key) is None and list(tmp_path.rglob("*")) == [tmp_path / key[:2]]


def test_extraction_failing_midway_leaves_no_entry(digits_train, tmp_path, monkeypatch):
    encoder = wide_encoder()
    calls = {"n": 0}
    forward = encoder.model.forward

    def failing(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory")
        return forward(x)

    encoder.embed = failing
    cache = FeatureCache(tmp_path / "cache")
    context = ExtractionContext.create(encoder, digits_train, None, batch_size=64)
    with pytest.raises(RuntimeError, match="out of memory"):
        extract_cached(context, cache)
    assert cache.entries() == [] and not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


@pytest.mark.parametrize("shape", [(1, 1), (37, 3), (1000, 9), (4097, 64)])
def test_block_moments_are_numpys_bit_for_bit(shape, monkeypatch):
    """Standardisation statistics read block by block equal numpy's whole-matrix mean and std exactly,
    so streamed probes score what in-memory probes score."""
    rng = np.random.RandomState(sum(shape))
    x = (rng.randn(*shape) * 10 + rng.randn(shape[1]) * 300).astype(np.float32)
    monkeypatch.setattr(matrices, "BLOCK_BYTES", 4 * shape[1] * 5)  # five rows a block: many blocks
    rows = Matrix(x).rows()
    mean, std = column_moments(Rows(rows.matrix, None))
    assert np.array_equal(mean, x.mean(axis=0, dtype=np.float64))
    assert np.array_equal(std, x.std(axis=0, dtype=np.float64))


def test_rows_of_a_file_equal_rows_of_the_array(tmp_path):
    x = np.random.RandomState(1).randn(50, 4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    index = np.array([3, 1, 49, 7, 7])
    for matrix in (Matrix(x), Matrix(tmp_path / "x.npy")):
        view = matrix.rows(index)
        assert view.shape == (5, 4) and np.array_equal(np.asarray(view), x[index])
        assert np.array_equal(np.concatenate(list(view.blocks(block_bytes=16 * 2))), x[index])
        assert np.array_equal(np.asarray(view.select(np.array([True, False, True, False, True]))), x[index[[0, 2, 4]]])
        assert np.array_equal(np.asarray(matrix.rows()), x)
    bad = x.copy()
    bad[13, 2] = np.nan
    assert all_finite(Matrix(x).rows()) and not all_finite(Matrix(bad).rows(np.arange(10, 20)))
    assert degenerate_flags(Matrix(np.zeros((5, 3), np.float32)).rows()) == ["constant", "mostly_dead_units"]
    assert degenerate_flags(x) == []


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


def test_forward_batches_are_counted_once_per_batch(digits_train, tmp_path):
    before = features_module.FORWARD_BATCHES
    extract_cached(ExtractionContext.create(wide_encoder(), digits_train, None, batch_size=100), None)
    assert features_module.FORWARD_BATCHES - before == -(-len(digits_train) // 100)
