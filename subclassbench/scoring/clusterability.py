"""Clusterability (protocol v2): how well each layer's subclass structure can be recovered, per layer.

Three measurements, each after the paper it reproduces:

* **k-means within each true superclass** (k = its subclasses), scored against
  the subclasses by AMI (the ranking metric), ARI, NMI, purity and matched
  accuracy; ``within_superclass_acc`` is the Hungarian-matched accuracy of
  that partition over all samples. It is an *oracle* quantity: the true
  superclass is given and the clusters are named on the scored images.
* **Ward within each true superclass** at k = subclasses × 1…5
  (Nguyen & Kornblith 2023's overclustering), scored by AMI and purity.
* **Reconstruction accuracy** (Yang, Steinhardt & Hu 2023): a linear probe
  predicts the superclass; k-means fit per superclass on the *train* split
  names its clusters by Hungarian matching on train labels; each test image
  takes the name of the nearest centroid of its *predicted* superclass.

The parameters come from :data:`subclassbench.scoring.protocol.PROTOCOL`; the
committed layer (Brain-Score's layer commitment) is chosen here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from subclassbench.core.workerpool import Pending, WorkerPool
from subclassbench.errors import SubclassbenchError
from subclassbench.features.matrices import Rows, all_finite
from subclassbench.scoring.clusterability_units import (
    KMeansParams,
    SuperclassClusters,
    cluster_superclass,
    name_rows,
    named_centroids,
    portable,
)
from subclassbench.scoring.probes import ProbeFit, ProbeRecipe, fit_probes
from subclassbench.scoring.protocol import PROTOCOL

if TYPE_CHECKING:  # types only: summaries are recomputed (integrity.py) without loading torch
    from subclassbench.features.extraction import LayerFeatures
    from subclassbench.tasks.task import SplitData

PARAMS = PROTOCOL["clusterability"]


def _check_superclass(split: SplitData, s: int, rows: np.ndarray) -> None:
    sup = split.task.superclasses[s]
    k = len(sup.subclasses)
    if len(rows) < k:
        raise SubclassbenchError(
            f"superclass '{sup.name}' has {len(rows)} samples in split '{split.split}' but {k} subclasses; "
            "the split is too small"
        )
    present = np.unique(split.subclass[rows])
    if len(present) < k:  # k-means would look for a subclass the data does not hold
        absent = next(sub.name for i, sub in enumerate(sup.subclasses) if i not in present)
        raise SubclassbenchError(
            f"subclass '{absent}' of superclass '{sup.name}' has no samples in split '{split.split}'; "
            "the data is incomplete or does not match the task"
        )


@dataclass
class LayerClusters:
    """One layer's clusterability scores and the per-image assignments they come from."""

    scores: dict[str, Any]
    kmeans: np.ndarray  # (n,) cluster within the image's superclass
    ward: np.ndarray | None  # (factors, n) Ward cluster at k × factor; None without Ward
    superclass_pred: np.ndarray | None = None  # (n,) the reconstruction probe's superclass
    reconstructed: np.ndarray | None = None  # (n,) reconstructed subclass within it (-1: an empty cluster)
    head_reconstructed: np.ndarray | None = None  # (n,) the same within the encoder's own head's superclass


def score_clusterability(features: np.ndarray | Rows, split: SplitData, with_ward: bool = True) -> dict[str, Any]:
    """k-means (and, with ``with_ward``, Ward overclustering) within each true superclass of one split."""
    return cluster_layer(features, split, with_ward).scores


def _kmeans_params() -> KMeansParams:
    return KMeansParams(n_init=PARAMS["n_init"], max_iter=PARAMS["max_iter"], seed=PARAMS["seed"])


def _cluster_units(features: Rows, split: SplitData, with_ward: bool) -> Iterator[tuple[Any, ...]]:
    """One layer's units of :func:`~subclassbench.scoring.clusterability_units.cluster_superclass`, superclass by
    superclass (each superclass checked as its unit is made)."""
    factors = tuple(PARAMS["ward"]["overcluster_factors"])
    for s, sup in enumerate(split.task.superclasses):
        rows = np.flatnonzero(split.superclass == s)
        _check_superclass(split, s, rows)
        ward = factors if with_ward and len(rows) <= PARAMS["ward"]["max_points"] else None
        yield portable(features.select(rows)), split.subclass[rows], len(sup.subclasses), _kmeans_params(), ward


def _layer_clusters(split: SplitData, with_ward: bool, units: list[SuperclassClusters]) -> LayerClusters:
    """A layer's scores from its superclasses' units: unweighted means over superclasses."""
    factors = PARAMS["ward"]["overcluster_factors"]
    kmeans = np.full(len(split), -1, dtype=np.int64)
    ward = np.full((len(factors), len(split)), -1, dtype=np.int64) if with_ward else None
    per_superclass = []
    for s, (sup, unit) in enumerate(zip(split.task.superclasses, units, strict=True)):
        rows = np.flatnonzero(split.superclass == s)
        kmeans[rows] = unit.pred
        k = len(sup.subclasses)
        per_superclass.append({"superclass": sup.id, "name": sup.name, "n": len(rows), "k": k, **unit.scores})
        if ward is not None and unit.ward is not None:
            for i, f in enumerate(factors):
                ward[i, rows] = unit.ward["cuts"][f]
    result: dict[str, Any] = {key: float(np.mean([e[key] for e in per_superclass])) for key in PARAMS["metrics"]}
    result["within_superclass_acc"] = sum(u.matched for u in units) / len(split)
    ward_rows = [u.ward for u in units if u.ward is not None]
    complete = with_ward and len(ward_rows) == len(units)  # None when a superclass was too large for Ward
    result["ward"] = _ward_summary(ward_rows, len(split)) if complete else None
    result["per_superclass"] = per_superclass
    return LayerClusters(result, kmeans, ward if complete else None)


def cluster_layer(
    features: np.ndarray | Rows, split: SplitData, with_ward: bool = True, pool: WorkerPool | None = None
) -> LayerClusters:
    """:func:`score_clusterability` with the per-image cluster assignments kept.

    One superclass's rows of the layer are read per unit of work (``pool``: run in worker processes)."""
    units = _cluster_units(Rows.of(features), split, with_ward)
    return _layer_clusters(split, with_ward, (pool or WorkerPool()).map(cluster_superclass, units))


def _ward_summary(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Unweighted means over superclasses, as for k-means; None upstream when a superclass was too large."""
    out: dict[str, Any] = {key: float(np.mean([r["scores"][key] for r in rows])) for key in PARAMS["metrics"]}
    out["within_superclass_acc"] = sum(r["matched"] for r in rows) / n
    factors = PARAMS["ward"]["overcluster_factors"]
    out["overcluster"] = [
        {
            "factor": f,
            "ami": float(np.mean([r["overcluster"][f]["ami"] for r in rows])),
            "purity": float(np.mean([r["overcluster"][f]["purity"] for r in rows])),
        }
        for f in factors
    ]
    return out


@dataclass(frozen=True)
class Reconstruction:
    reconstruction_acc: float
    superclass_acc: float
    probe_epoch: int
    n_train: int
    superclass_pred: np.ndarray  # (n,) per test image
    reconstructed: np.ndarray  # (n,) subclass within the predicted superclass; -1 when its cluster names none


def superclass_probes(
    train_features: Sequence[np.ndarray | Rows],
    train_superclass: np.ndarray,
    test_features: Sequence[np.ndarray | Rows],
    test_superclass: np.ndarray,
    n_superclasses: int,
    recipe: ProbeRecipe | None = None,
    device: str = "cpu",
) -> list[ProbeFit]:
    """Every layer's superclass probe (trained in one batched program), scored on the test rows.

    Plain labels, not splits: with file-backed rows it is a unit a worker process can be handed."""
    return fit_probes(
        train_features, train_superclass, {"test": (test_features, test_superclass)}, n_superclasses,
        recipe or ProbeRecipe(), predict=("test",), device=device,
    )  # fmt: skip


def _reconstruction_units(train_features: Rows, train: SplitData) -> Iterator[tuple[Any, ...]]:
    """One layer's units of :func:`~subclassbench.scoring.clusterability_units.named_centroids`: they need no probe, so
    they run while the superclass probes train."""
    for s, sup in enumerate(train.task.superclasses):
        rows = np.flatnonzero(train.superclass == s)
        _check_superclass(train, s, rows)
        yield portable(train_features.select(rows)), train.subclass[rows], len(sup.subclasses), _kmeans_params()


def _reconstruction(
    test_features: Rows, test: SplitData, fit: ProbeFit, n_train: int, named: list[tuple[np.ndarray, np.ndarray]]
) -> Reconstruction:
    """Each test image takes the name of the nearest centroid of its *predicted* superclass."""
    predicted_super = fit.predictions["test"]
    reconstructed, correct = reconstruct_within(test_features, test, predicted_super, named)
    return Reconstruction(
        reconstruction_acc=float(correct.mean()),
        superclass_acc=fit.scores["test"].acc,
        probe_epoch=fit.selected_epoch,
        n_train=n_train,
        superclass_pred=np.asarray(predicted_super, dtype=np.int64),
        reconstructed=reconstructed,
    )


def reconstruct_within(
    test_features: Rows, test: SplitData, predicted_super: np.ndarray, named: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Each test image named by the nearest train centroid of the superclass ``predicted_super`` gives it (a
    probe's or the encoder's own head's): the reconstructed subclass (-1 where that cluster names none) and
    whether it is right (wrong superclass = wrong)."""
    correct = np.zeros(len(test), dtype=bool)
    reconstructed = np.full(len(test), -1, dtype=np.int64)
    for s, (centroids, name) in enumerate(named):
        assigned = np.flatnonzero(predicted_super == s)
        if len(assigned):
            fine = name_rows(test_features.select(assigned), centroids, name)
            reconstructed[assigned] = fine
            correct[assigned] = (test.superclass[assigned] == s) & (test.subclass[assigned] == fine)
    return reconstructed, correct


def reconstruct(
    train_features: np.ndarray | Rows,
    train: SplitData,
    test_features: np.ndarray | Rows,
    test: SplitData,
    fit: ProbeFit | None = None,
    pool: WorkerPool | None = None,
) -> Reconstruction:
    """Yang et al. (2023)'s fine-label reconstruction from superclass-level information, for one layer.

    ``fit`` is this layer's superclass probe (:func:`superclass_probes`); fit here when not given. A linear
    probe predicts each test image's superclass; k-means fit per superclass on the *train* split names its
    clusters by Hungarian matching on train labels; each test image takes the name of the nearest centroid
    of its *predicted* superclass. One superclass's rows of the layer are read per unit of work."""
    train_features, test_features = Rows.of(train_features), Rows.of(test_features)
    if fit is None:
        fit = superclass_probes(
            [train_features], train.superclass, [test_features], test.superclass, len(test.task.superclasses)
        )[0]
    named = (pool or WorkerPool()).map(named_centroids, _reconstruction_units(train_features, train))
    return _reconstruction(test_features, test, fit, len(train), named)


ProbeUnit = tuple[list[Rows], np.ndarray, list[Rows], np.ndarray, int]


class StartedLayers:
    """Clusterability of every layer, started: its (layer, superclass) units run in the pool's workers while
    the caller goes on (e.g. trains the transfer probes); :meth:`finish` collects, training the superclass
    probes first unless a worker has them. Without workers everything runs in :meth:`finish`, one thing at a
    time. The caller has checked the features finite (:func:`score_layers` does, the pipeline for every split)."""

    def __init__(
        self,
        layers: list[LayerFeatures],
        split: SplitData,
        progress: bool,
        train: tuple[list[LayerFeatures], SplitData] | None,
        with_ward: bool,
        device: str,
        pool: WorkerPool,
    ) -> None:
        self.layers, self.split, self.progress, self.train = layers, split, progress, train
        # The encoder's own head's superclass per image, when it has one (set by the caller before finish()).
        self.head_pred: np.ndarray | None = None
        self.with_ward, self.device = with_ward, device
        for data in (split, *([train[1]] if train else [])):  # before any work, not when a unit gets there
            for s in range(len(data.task.superclasses)):
                _check_superclass(data, s, np.flatnonzero(data.superclass == s))
        self._probes: Pending | None = None
        # superclass_probes' arguments: train rows, their superclasses, test rows, theirs, how many superclasses.
        self._probe_unit: ProbeUnit | None = None
        if train is not None:
            train_x, test_x = [f.rows() for f in train[0]], [f.rows() for f in layers]
            self._probe_unit = (train_x, train[1].superclass, test_x, split.superclass, len(split.task.superclasses))
            file_backed = not any(r.matrix.in_memory for r in train_x + test_x)
            if pool.workers > 1 and device == "cpu" and file_backed:
                # The superclass probes are the longest single piece: with workers and cached (file-backed)
                # features they train in a worker too, beside this process's transfer probes; one thread each.
                self._probes = pool.start(superclass_probes, [self._probe_unit])
        units = (u for layer in layers for u in _cluster_units(layer.rows(), split, with_ward))
        self._clusters: Pending = pool.start(cluster_superclass, units)
        self._named: Pending | None = None
        if train is not None:
            train_units = (u for layer in train[0] for u in _reconstruction_units(layer.rows(), train[1]))
            self._named = pool.start(named_centroids, train_units)

    def finish(self) -> list[LayerClusters]:
        import sklearn

        from subclassbench.core.progress import bar as progress_bar

        layers, split, train = self.layers, self.split, self.train
        probes = None
        if self._probes is not None:
            probes = self._probes.result()[0]
        elif self._probe_unit is not None:
            probes = superclass_probes(*self._probe_unit, device=self.device)
        n_super = len(split.task.superclasses)
        bar = progress_bar(len(layers), "cluster layers", "layer", self.progress)
        out: list[LayerClusters] = []
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            units = self._clusters.result()
            for i in range(len(layers)):
                out.append(_layer_clusters(split, self.with_ward, units[i * n_super : (i + 1) * n_super]))
                bar.update(1)
            named = self._named.result() if self._named is not None else None
        bar.close()
        for i, layer_clusters in enumerate(out):
            keyed: dict[str, Any] = {"reconstruction_acc": None, "superclass_acc": None, "reconstruction": None}
            if train is not None:
                assert probes is not None and named is not None
                rec = _reconstruction(
                    layers[i].rows(), split, probes[i], len(train[1]), named[i * n_super : (i + 1) * n_super]
                )
                layer_clusters.superclass_pred, layer_clusters.reconstructed = rec.superclass_pred, rec.reconstructed
                keyed = {
                    "reconstruction_acc": rec.reconstruction_acc,
                    "superclass_acc": rec.superclass_acc,
                    "reconstruction": {
                        "train_split": train[1].split,
                        "n_train": rec.n_train,
                        "probe_epoch": rec.probe_epoch,
                    },
                }
                if self.head_pred is not None:  # Yang et al.'s own setting: the network's head names the superclass
                    own = named[i * n_super : (i + 1) * n_super]
                    head_rec, head_right = reconstruct_within(layers[i].rows(), split, self.head_pred, own)
                    layer_clusters.head_reconstructed = head_rec
                    keyed["head_reconstruction_acc"] = float(head_right.mean())
            layer_clusters.scores = {**layer_clusters.scores, **keyed}
        return out


def score_layers(
    layers: list[LayerFeatures],
    split: SplitData,
    progress: bool = False,
    train: tuple[list[LayerFeatures], SplitData] | None = None,
    with_ward: bool = True,
    device: str = "cpu",
    pool: WorkerPool | None = None,
) -> list[LayerClusters]:
    """Clusterability of every layer, in layer order; with ``train`` also reconstruction accuracy.

    The work is cut into (layer, superclass) units, run in ``pool``'s worker processes (inline without
    one); each reads one superclass's rows of one layer from the (cached) matrices, and the superclass
    probes read a block at a time: memory holds a few units, however many layers and rows there are."""
    # Inputs are checked once here (finite float32, integer labels; the pipeline checks every split itself,
    # once): scikit-learn's per-call validation costs more than a superclass-sized clustering.
    for layer in layers + (train[0] if train else []):
        if not all_finite(layer.rows()):
            raise SubclassbenchError(f"layer {layer.name} has NaN or infinite features; check the encoder's weights")
    return StartedLayers(layers, split, progress, train, with_ward, device, pool or WorkerPool()).finish()


def summarize(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Best layer (by mean AMI) and the last layer's headline numbers."""
    amis = [layer["clusterability"]["ami"] for layer in layers]
    best = int(np.argmax(amis))  # argmax takes the first, i.e. shallowest, of ties
    last = layers[-1]["clusterability"]
    return {
        "primary_metric": "ami",
        "best_layer": layers[best]["name"],
        "best_depth": layers[best]["depth"],
        "best_ami": amis[best],
        "best_within_superclass_acc": layers[best]["clusterability"]["within_superclass_acc"],
        "last_layer": layers[-1]["name"],
        "last_ami": last["ami"],
        "last_within_superclass_acc": last["within_superclass_acc"],
        "last_reconstruction_acc": last["reconstruction_acc"],
        "last_superclass_acc": last["superclass_acc"],
    }
