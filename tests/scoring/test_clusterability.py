"""Subclass clusterability (subclassbench.scoring.clusterability): AMI on synthetic tasks, reconstruction on
train labels (Yang et al.), Ward overclustering, file-backed features scored a layer at a time, and bad
features refused before any unit starts."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.core.workerpool import WorkerPool
from subclassbench.errors import SubclassbenchError
from subclassbench.features.cache import FeatureCache
from subclassbench.features.extraction import ExtractionContext, LayerFeatures, extract_cached
from subclassbench.metrics.partition import purity
from subclassbench.scoring.clusterability import reconstruct, score_clusterability, score_layers
from subclassbench.scoring.protocol import PROTOCOL
from subclassbench.tasks.task import SplitData, Task, builtin_tasks_dir, read_task_file
from tests.conftest import tiny_task_raw
from tests.memory import N_LAYERS, WIDTH, _peak, wide_encoder

# --------------------------------------------------------------------------- clusterability on synthetic tasks


def synthetic(separation: float, seed: int = 0) -> Task:
    raw = read_task_file(builtin_tasks_dir() / "synthetic-hier.yaml")
    raw["data"]["params"].update(subclass_separation=separation, seed=seed)
    return Task.from_dict(raw)


def test_ami_rises_with_subclass_separation():
    amis = []
    for separation in (0.0, 1.0, 2.0, 4.0, 8.0):
        split = synthetic(separation).load_split("test")
        scores = score_clusterability(split.images.array, split)
        amis.append(scores["ami"])
    assert amis[0] < 0.05  # no subclass structure → chance
    assert amis[-1] > 0.95  # far-apart subclasses → recovered
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(amis))  # monotone up to k-means noise
    assert amis[3] > amis[1] + 0.3


def test_within_superclass_acc_is_matched_counts_over_all_samples():
    split = synthetic(2.0).load_split("test")
    scores = score_clusterability(split.images.array, split)
    per = scores["per_superclass"]
    assert sum(p["n"] for p in per) == len(split)
    expected = sum(p["matched_acc"] * p["n"] for p in per) / len(split)
    assert scores["within_superclass_acc"] == pytest.approx(expected)
    assert scores["ami"] == pytest.approx(np.mean([p["ami"] for p in per]))
    assert scores["ward"] is not None and -1 <= scores["ward"]["ami"] <= 1


def test_scores_do_not_depend_on_feature_scale():
    split = synthetic(3.0).load_split("test")
    a = score_clusterability(split.images.array, split)
    b = score_clusterability(split.images.array * 1000.0, split)  # L2 normalisation removes scale
    assert a["ami"] == pytest.approx(b["ami"], abs=1e-6)


# --------------------------------------------------------------------------- reconstruction and Ward overclustering


def two_by_two() -> Task:
    raw = tiny_task_raw()
    raw["splits"]["train"] = {"source_split": "train", "select": "all"}
    return Task.from_dict(raw)


def split_of(task: Task, name: str, subclass_of_sample: list[int]) -> SplitData:
    """A split whose samples carry the given dataset labels (0, 1: superclass 0; 2, 3: superclass 1)."""
    from subclassbench.tasks.datasources import ArrayImageSet

    labels = np.asarray(subclass_of_sample, dtype=np.int64)
    images = ArrayImageSet(
        array=np.zeros((len(labels), 2, 2, 3), dtype=np.uint8), labels=labels, ids=[str(i) for i in range(len(labels))]
    )
    position = [task.label_to_position[v] for v in labels.tolist()]
    return SplitData(
        task, name, images, np.asarray([p[0] for p in position]), np.asarray([p[1] for p in position]), "generated"
    )


CENTRES = {0: [8, 0, 0, 0], 1: [0, 8, 0, 0], 2: [0, 0, 8, 0], 3: [0, 0, 0, 8]}


def blobs(labels: list[int], centre_of: dict[int, list[int]], seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    return np.asarray([centre_of[v] for v in labels], dtype=np.float32) + 0.3 * rng.randn(len(labels), 4).astype(
        np.float32
    )


def test_reconstruction_names_clusters_on_train_labels_not_on_the_scored_images():
    """Swap two subclasses' places between train and test: the oracle (clusters named on the test labels)
    still reads 1.0, reconstruction (named on train labels, as Yang et al.) reads 0 for that superclass."""
    task = two_by_two()
    train_labels = [v for v in range(4) for _ in range(40)]
    test_labels = [v for v in range(4) for _ in range(20)]
    train, test = split_of(task, "train", train_labels), split_of(task, "test", test_labels)
    x_train = blobs(train_labels, CENTRES, 0)
    swapped = {**CENTRES, 0: CENTRES[1], 1: CENTRES[0]}  # cat and dog trade places on test
    x_test = blobs(test_labels, swapped, 1)
    oracle = score_clusterability(x_test, test)
    rec = reconstruct(x_train, train, x_test, test)
    assert oracle["within_superclass_acc"] == 1.0
    assert rec.superclass_acc == 1.0
    assert rec.reconstruction_acc == pytest.approx(0.5)  # the vehicles are right, every animal is wrong


def test_a_wrong_superclass_prediction_is_a_wrong_reconstruction():
    task = two_by_two()
    train_labels = [v for v in range(4) for _ in range(40)]
    test_labels = [v for v in range(4) for _ in range(20)]
    train, test = split_of(task, "train", train_labels), split_of(task, "test", test_labels)
    x_train = blobs(train_labels, CENTRES, 0)
    x_test = blobs(test_labels, CENTRES, 1)
    x_test[:10] = blobs([2] * 10, CENTRES, 2)  # ten cats that look like cars: the probe says "vehicle"
    rec = reconstruct(x_train, train, x_test, test)
    assert rec.superclass_acc == pytest.approx(70 / 80)
    assert rec.reconstruction_acc == pytest.approx(70 / 80)  # every other image is right
    assert rec.reconstruction_acc <= rec.superclass_acc


def test_reconstruction_ignores_how_subclass_ids_are_numbered():
    task = two_by_two()
    train_labels = [v for v in range(4) for _ in range(30)]
    test_labels = [v for v in range(4) for _ in range(15)]
    x_train, x_test = blobs(train_labels, CENTRES, 3), blobs(test_labels, CENTRES, 4)
    x_test += 2.5 * np.random.RandomState(5).randn(*x_test.shape).astype(np.float32)  # some errors
    base = reconstruct(x_train, split_of(task, "train", train_labels), x_test, split_of(task, "test", test_labels))
    relabel = {0: 1, 1: 0, 2: 3, 3: 2}
    renamed = reconstruct(
        x_train,
        split_of(task, "train", [relabel[v] for v in train_labels]),
        x_test,
        split_of(task, "test", [relabel[v] for v in test_labels]),
    )
    assert renamed.reconstruction_acc == pytest.approx(base.reconstruction_acc)
    assert 0.0 < base.reconstruction_acc < 1.0


def test_ward_overclustering_agrees_with_scikit_learn_and_purity_never_falls():
    task = two_by_two()
    labels = [v for v in range(4) for _ in range(25)]
    x = blobs(labels, CENTRES, 6) + 3.0 * np.random.RandomState(7).randn(100, 4).astype(np.float32)
    split = split_of(task, "test", labels)
    scores = score_clusterability(x, split)
    over = scores["ward"]["overcluster"]
    assert [row["factor"] for row in over] == PROTOCOL["clusterability"]["ward"]["overcluster_factors"]
    from subclassbench.metrics.clustering import l2_normalize

    xn = l2_normalize(x)
    for row in over:
        expected_ami, expected_purity = [], []
        for s in range(2):
            rows = np.flatnonzero(split.superclass == s)
            pred = AgglomerativeClustering(n_clusters=2 * row["factor"], linkage="ward").fit_predict(xn[rows])
            expected_ami.append(adjusted_mutual_info_score(split.subclass[rows], pred))
            expected_purity.append(purity(split.subclass[rows], pred))
        assert row["ami"] == pytest.approx(np.mean(expected_ami), abs=1e-12)
        assert row["purity"] == pytest.approx(np.mean(expected_purity), abs=1e-12)
    purities = [row["purity"] for row in over]
    assert purities == sorted(purities)  # cuts of one tree refine each other: purity cannot fall
    assert over[0]["ami"] == scores["ward"]["ami"]


# --------------------------------------------------------------------------- file-backed features, a layer at a time


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


# --------------------------------------------------------------------------- inputs checked before any unit starts


def test_non_finite_features_are_one_error_before_any_scoring():
    """score_layers checks its inputs itself, before any unit starts (StartedLayers leaves that to its caller)."""
    import numpy as np

    from subclassbench.features.extraction import LayerFeatures
    from subclassbench.scoring.clusterability import score_layers
    from subclassbench.tasks.task import load_task

    split = load_task("digits-5").load_split("test")
    x = np.random.RandomState(0).randn(len(split), 4).astype(np.float32)
    x[3, 1] = np.inf
    bad = LayerFeatures("block1", 0.5, "none", x)
    with pytest.raises(SubclassbenchError, match="layer block1 has NaN or infinite features"):
        score_layers([bad], split, with_ward=False, pool=WorkerPool(2))


# --------------------------------------------------------------------------- without a train split; in workers


def _digits_layers(split: SplitData, seed: int) -> list[LayerFeatures]:
    """Two layers of 10 features that hold the subclass plainly (the second more than the first)."""
    rng = np.random.default_rng(seed)
    onehot = np.eye(10)[split.global_subclass]
    noise = [rng.normal(size=onehot.shape) for _ in range(2)]
    rows = [(4 * (i + 1) * onehot + noise[i]).astype(np.float32) for i in range(2)]
    return [LayerFeatures(f"l{i}", (i + 1) / 2, "none", x) for i, x in enumerate(rows)]


def test_without_a_train_split_reconstruction_is_left_empty(digits):
    split = digits.load_split("test")
    scored = score_layers(_digits_layers(split, 0), split, with_ward=False)
    for layer in scored:
        empty = ("reconstruction_acc", "superclass_acc", "reconstruction")
        assert {k: layer.scores[k] for k in empty} == dict.fromkeys(empty)
        assert layer.scores["ami"] > 0.3 and layer.reconstructed is None


def test_scoring_in_worker_processes_gives_the_inline_scores(digits, tmp_path):
    """Clustering units and (for file-backed features, as the cache gives them) the superclass probes run in a
    pool's workers score what they score inline."""
    test, train = digits.load_split("test"), digits.load_split("train")
    layers, train_layers = _digits_layers(test, 0), _digits_layers(train, 1)
    inline = score_layers(layers, test, train=(train_layers, train), with_ward=False)

    def on_disk(features: list[LayerFeatures], split: str) -> list[LayerFeatures]:
        for f in features:
            np.save(tmp_path / f"{split}-{f.name}.npy", f.features)
        return [LayerFeatures(f.name, f.depth, f.pooling, tmp_path / f"{split}-{f.name}.npy") for f in features]

    files = on_disk(layers, "test"), on_disk(train_layers, "train")
    pooled = score_layers(files[0], test, train=(files[1], train), with_ward=False, pool=WorkerPool(2))
    assert [c.scores for c in pooled] == [c.scores for c in inline]
    assert all(c.scores["reconstruction_acc"] > 0.5 for c in inline)


def test_a_subclass_missing_from_the_split_is_named(digits):
    split = digits.load_split("test")
    without_five = dataclasses.replace(split, subclass=np.where(split.superclass == 0, 0, split.subclass))
    with pytest.raises(SubclassbenchError) as raised:
        score_layers(_digits_layers(split, 0), without_five, with_ward=False)
    assert str(raised.value) == (
        "subclass 'five' of superclass 'zero/five' has no samples in split 'test'; "
        "the data is incomplete or does not match the task"
    )
