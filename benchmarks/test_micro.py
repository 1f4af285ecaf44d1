"""Micro-benchmarks (pytest-benchmark): one hot path each, on small generated data, seconds on a CPU.

Measure (``-n 0``: pytest-benchmark turns itself off under xdist, which the project's addopts start with
``-n auto``; ``--benchmark-enable`` overrides the addopts' ``--benchmark-disable``)::

    python -m pytest benchmarks/test_micro.py -n 0 --benchmark-enable --benchmark-only

As a smoke test (each function runs once, untimed, and its assertions still check the code path; CI runs this)::

    python -m pytest -q benchmarks/test_micro.py -n 0 --benchmark-disable

Saved baselines and the compare command: docs/benchmarks.md. The benchmarks are grouped by subject; within a
group a reference (scikit-learn's AMI per replicate, the bare forward pass) sits beside the code it is compared to.
Each runs a fixed number of rounds after one warm-up round, so first-call costs stay out of the numbers (faiss's
first call; the first torch optimizer imports ``torch._dynamo``, seconds) and a measured run takes about a minute.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.encoders.base import load_encoder
from subclassbench.features.extraction import extract_features
from subclassbench.metrics.clustering import kmeans_faiss, l2_normalize
from subclassbench.scoring.clusterability import PARAMS
from subclassbench.scoring.clusterability_units import KMeansParams, cluster_superclass
from subclassbench.scoring.probes import ProbeRecipe, fit_probes
from subclassbench.tasks.task import load_task
from subclassbench.uncertainty import bootstrap
from subclassbench.uncertainty.bootstrap import (
    BOOTSTRAP,
    ami_from_tables,
    cell_tables,
    cluster_replicates,
    interval,
    stratified_counts,
    with_estimate,
)

# The protocol's k-means (n_init 10, max_iter 100, seed 0), as scoring builds it.
KMEANS = KMeansParams(n_init=PARAMS["n_init"], max_iter=PARAMS["max_iter"], seed=PARAMS["seed"])


def clear_emi_cache() -> None:
    """The AMI's expected-information term is memoised on table marginals for the whole process: cleared before
    each round, so every round pays what one result pays the first time, not a warm cache from the last round."""
    bootstrap._emi.cache_clear()


@pytest.fixture(autouse=True)
def record_load(benchmark):
    """The 1-minute load average before and after each benchmark, saved with its timings (``extra_info``): on a
    shared machine it tells a slow round from a busy one."""
    before = os.getloadavg()[0]
    yield
    benchmark.extra_info["loadavg_1min"] = [round(before, 2), round(os.getloadavg()[0], 2)]


# --------------------------------------------------------------------------- k-means within one superclass


@pytest.fixture(scope="module")
def superclass_rows() -> tuple[np.ndarray, np.ndarray]:
    """One superclass: 600 rows × 64 dims, 4 subclasses as Gaussian blobs (separable: k-means finds them)."""
    rng = np.random.default_rng(0)
    k, n, dim = 4, 600, 64
    truth = np.arange(n) % k
    x = rng.normal(size=(k, dim))[truth] * 2.0 + rng.normal(size=(n, dim))
    return l2_normalize(x.astype(np.float32)), truth


@pytest.mark.benchmark(group="kmeans")
def test_kmeans_faiss(benchmark, superclass_rows):
    """The protocol's clustering back end alone: faiss k-means, 10 restarts × 100 iterations, all points."""
    x, truth = superclass_rows
    settings = {"n_init": KMEANS.n_init, "max_iter": KMEANS.max_iter, "seed": KMEANS.seed}
    labels = benchmark.pedantic(kmeans_faiss, args=(x, 4), kwargs=settings, rounds=50, warmup_rounds=1)
    assert labels.shape == truth.shape and labels.dtype == np.int64
    assert set(np.unique(labels)) <= set(range(4))
    assert adjusted_mutual_info_score(truth, labels) > 0.9


@pytest.mark.benchmark(group="kmeans")
def test_cluster_superclass(benchmark, superclass_rows):
    """One unit of clusterability work (scoring/clusterability_units.py): normalise, k-means, the five scores."""
    x, truth = superclass_rows
    out = benchmark.pedantic(cluster_superclass, args=(x, truth, 4, KMEANS, None), rounds=20, warmup_rounds=1)
    assert out.pred.shape == truth.shape
    assert set(out.scores) == set(PARAMS["metrics"])
    assert all(0.0 <= v <= 1.0 for v in out.scores.values())
    assert out.scores["ami"] > 0.9 and 0 < out.matched <= len(truth)


# --------------------------------------------------------------------------- AMI over contingency tables


@pytest.fixture(scope="module")
def replicate_partitions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One superclass of 200 images (4 subclasses of 50), clusters agreeing with the subclass 80% of the time,
    and 50 bootstrap draws: (counts (50, 200), truth, clusters)."""
    rng = np.random.default_rng(1)
    truth = np.arange(200) % 4
    clusters = np.where(rng.random(200) < 0.8, truth, rng.integers(0, 4, 200))
    counts = stratified_counts(np.zeros(200, dtype=np.int64), 50, 0, "evaluation")
    return counts, truth, clusters


@pytest.mark.benchmark(group="ami")
def test_ami_from_tables(benchmark, replicate_partitions):
    """The bootstrap's AMI: weighted (subclass, cluster) tables of every replicate, then the AMI of all tables at
    once (uncertainty/bootstrap.py); the expected-information cache is cleared before each round."""
    counts, truth, clusters = replicate_partitions

    def run() -> np.ndarray:
        return ami_from_tables(cell_tables(counts, truth, clusters))

    ami = benchmark.pedantic(run, setup=clear_emi_cache, rounds=20, warmup_rounds=1)
    assert ami.shape == (len(counts),)
    assert np.all((ami >= -1.0) & (ami <= 1.0))
    for b in range(3):  # scikit-learn's AMI of the resampled labels, as scoring computes it
        expected = adjusted_mutual_info_score(np.repeat(truth, counts[b]), np.repeat(clusters, counts[b]))
        assert ami[b] == pytest.approx(expected, abs=1e-12)


@pytest.mark.benchmark(group="ami")
def test_ami_sklearn_per_replicate(benchmark, replicate_partitions):
    """Reference: how scoring computes AMI (scikit-learn, labels in), once per replicate's resampled labels."""
    counts, truth, clusters = replicate_partitions

    def run() -> np.ndarray:
        return np.array([adjusted_mutual_info_score(np.repeat(truth, c), np.repeat(clusters, c)) for c in counts])

    ami = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert ami.shape == (len(counts),)
    assert np.all((ami >= -1.0) & (ami <= 1.0))


# --------------------------------------------------------------------------- one probe epoch over many layers


@pytest.fixture(scope="module")
def probe_layers() -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """18 layers of CIFAR-like widths (16–128) over 2,000 training and 500 test rows, 5 classes."""
    rng = np.random.default_rng(2)
    widths = [16] * 5 + [32] * 5 + [64] * 5 + [128] * 3
    y_train, y_test = rng.integers(0, 5, 2000), rng.integers(0, 5, 500)

    def layer(y: np.ndarray, width: int) -> np.ndarray:
        return (rng.normal(size=(len(y), width)) + 0.5 * y[:, None]).astype(np.float32)

    return [layer(y_train, w) for w in widths], y_train, [layer(y_test, w) for w in widths], y_test


@pytest.mark.benchmark(group="probes")
def test_probe_epoch_many_layers(benchmark, probe_layers):
    """``fit_probes`` for one epoch (the protocol's recipe otherwise): all 18 layers' probes as one batched
    program, with the standardising, the held-out epoch choice and scoring of the test set."""
    x_train, y_train, x_test, y_test = probe_layers
    recipe = ProbeRecipe(epochs=1)
    args = (x_train, y_train, {"test": (x_test, y_test)}, 5, recipe)
    fits = benchmark.pedantic(fit_probes, args=args, rounds=7, warmup_rounds=1)
    assert len(fits) == len(x_train)
    assert all(f.selected_epoch == 1 and f.n_fit + f.n_holdout == len(y_train) for f in fits)
    assert all(0.0 <= f.scores["test"].acc <= 1.0 and 0.0 <= f.holdout_acc <= 1.0 for f in fits)
    assert max(f.scores["test"].acc for f in fits) > 0.3  # above chance (0.2): the classes shift every unit


# --------------------------------------------------------------------------- extraction per batch


@pytest.fixture(scope="module")
def digits_batch():
    """One batch: 256 of scikit-learn's 8×8 digits (task digits-5's test split, shipped with scikit-learn) and a
    randomly initialised builtin:digits_cnn (weights do not change the cost)."""
    images = load_task("digits-5").load_split("test").images.subset(np.arange(256))
    return load_encoder("builtin:digits_cnn", sample_shape=(1, 8, 8), num_classes=5), images


@pytest.fixture
def one_torch_thread():
    """torch on one thread while the extraction group runs: on shared cores, intra-op threads wait on each other
    whenever one is preempted, and the timings swung by 1.5× between runs; k-means and the probes already run on one
    thread by design. Multi-thread throughput is the ratio scripts' (bench_gpu.py, bench_core.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.benchmark(group="extraction")
def test_extract_one_batch(benchmark, digits_batch, one_torch_thread):
    """``extract_features`` over one batch: load, preprocess, one forward pass with every layer hooked and
    pooled, copies to numpy (in-process loading: the images are an in-memory array)."""
    encoder, images = digits_batch
    settings = {"batch_size": 256, "progress": False, "workers": 0}
    features = benchmark.pedantic(extract_features, args=(encoder, images), kwargs=settings, rounds=7, warmup_rounds=1)
    assert [f.name for f in features] == encoder.layer_names
    for f in features:
        assert f.features.shape == (256, f.shape[1]) and f.features.dtype == np.float32
        assert np.isfinite(f.features).all()


@pytest.mark.benchmark(group="extraction")
def test_forward_bare(benchmark, digits_batch, one_torch_thread):
    """Reference: the bare forward pass to the embedding over the same, already preprocessed, batch."""
    encoder, images = digits_batch
    x = encoder.preprocessing(images.load(np.arange(len(images))))

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return encoder.embed(x)

    out = benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    assert out.shape == (256, 64) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- the bootstrap


@pytest.fixture(scope="module")
def result_clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layer's stored k-means assignments, as a result's sidecar holds them: 1,000 evaluation images in 5
    superclasses of 2 subclasses (100 images each), clusters agreeing with the subclass 80% of the time."""
    rng = np.random.default_rng(3)
    superclass = np.repeat(np.arange(5), 200)
    subclass = 2 * superclass + np.arange(1000) % 2
    clusters = np.where(rng.random(1000) < 0.8, subclass % 2, 1 - subclass % 2)
    return superclass, subclass, clusters


@pytest.mark.benchmark(group="bootstrap")
def test_bootstrap_counts(benchmark, result_clusters):
    """The replicates' draw counts: 1,000 stratified resamples (the protocol's) of the evaluation split."""
    superclass, _, _ = result_clusters
    args = (superclass, BOOTSTRAP["resamples"], BOOTSTRAP["seed"], "evaluation")
    counts = benchmark.pedantic(stratified_counts, args=args, rounds=7, warmup_rounds=1)
    assert counts.shape == (BOOTSTRAP["resamples"], len(superclass))
    for s in np.unique(superclass):  # every replicate keeps each superclass's size
        assert np.all(counts[:, superclass == s].sum(axis=1) == np.count_nonzero(superclass == s))


@pytest.mark.benchmark(group="bootstrap")
def test_bootstrap_cluster_replicates(benchmark, result_clusters):
    """One layer's cluster replicates (``cluster_replicates``: per superclass, the weighted tables, their AMI
    centred on the sample NMI and their matched counts) over the estimate and 1,000 replicates; the
    expected-information cache is cleared before each round."""
    superclass, subclass, clusters = result_clusters
    counts = with_estimate(stratified_counts(superclass, BOOTSTRAP["resamples"], BOOTSTRAP["seed"], "evaluation"))
    out = benchmark.pedantic(
        cluster_replicates, args=(counts, superclass, subclass, clusters), setup=clear_emi_cache, rounds=5,
        warmup_rounds=1,
    )  # fmt: skip
    assert out.ami.shape == out.matched_acc.shape == (len(counts),)
    estimate = np.mean([adjusted_mutual_info_score(subclass[superclass == s], clusters[superclass == s])
                        for s in range(5)])  # fmt: skip
    assert out.ami[0] == pytest.approx(estimate, abs=1e-12)  # element 0 is the point estimate
    assert np.all((out.matched_acc >= 0.5) & (out.matched_acc <= 1.0))  # 2 subclasses: matching gets ≥ half
    low, high = interval(out.ami)
    assert -1.0 <= low <= high <= 1.0
