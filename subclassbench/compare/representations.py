"""Compare representations: layer×layer CKA and concept-level GRI between two encoders; agreement over training.

``compare`` extracts every layer of two encoders (or one, compared with
itself) on a task's evaluation split, turns each layer into soft concept
memberships (:func:`subclassbench.metrics.similarity.soft_assignments`: a fixed-seed
diagonal Gaussian mixture with k = the task's number of subclasses), and
reports the layer×layer linear CKA and generalized Rand index matrices, each
layer's GRI to the ground-truth subclasses (treated as one more "model" with
one-hot memberships), the adjacent-layer sanity check of Vielhaben et al.
(NeurIPS 2025), and the universal vs. unique concepts of one layer pair. Those
concepts come from the same GMM memberships (``concepts="gmm"``, the
baseline), or from NLMCD (``concepts="nlmcd"``, :mod:`subclassbench.compare.nlmcd`):
token-level UMAP + HDBSCAN concepts whose number is found, not fixed.

``agreement`` reads the per-epoch correctness logs of several ``subclassbench
train`` runs and reports, per epoch and for the test and train splits,
Pliushch et al.'s agreement (ECCV 2022: of the samples some run gets right,
the share every run gets right) with its accuracy-implied bounds and the
value independent runs would give, the share of all samples every run gets
right, and the runs' mean ± std accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from subclassbench.core.progress import bar as progress_bar
from subclassbench.core.progress import stage
from subclassbench.errors import SubclassbenchError, first_line

if TYPE_CHECKING:
    from subclassbench.features.cache import FeatureCache
from subclassbench.metrics.similarity import (
    agreement,
    agreement_if_independent,
    agreement_lower_bound,
    agreement_upper_bound,
    all_right_share,
    concept_pair_alignment,
    generalized_rand_index,
    linear_cka,
    soft_assignments,
)

COMPARE_VERSION = "1"
CONCEPT_METHODS = ("gmm", "nlmcd")
# A matched concept pair counts as universal when its distance is below this
# fraction of the mean distance of concept a to every concept of the other side.
UNIVERSAL_RATIO = 0.5


@dataclass
class Side:
    """One encoder's layers on the compared samples."""

    label: str
    encoder: Any  # kept for NLMCD's token-level pass over one layer
    info: dict[str, Any]
    layers: list[str]
    features: list[np.ndarray]
    memberships: list[np.ndarray]


def _subsample(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, max_samples, replace=False))


def _side(
    spec: str,
    weights: str | None,
    split: Any,
    rows: np.ndarray,
    k: int,
    seed: int,
    layers: list[str] | None,
    batch_size: int,
    progress: bool,
    cache: FeatureCache | None,
) -> Side:
    """One encoder's features on the compared rows: from the feature cache when there (an evaluation of the
    same encoder on the whole split fills it), else extracted and stored."""
    from subclassbench.encoders.base import load_encoder
    from subclassbench.features.extraction import ExtractionContext, extract_cached

    encoder = load_encoder(
        spec, weights=weights, sample_shape=split.images.sample_shape, num_classes=len(split.task.superclasses)
    )
    compared = split if len(rows) == len(split) else split.subset(rows)
    context = ExtractionContext.create(encoder, compared, layers, batch_size, "cpu", progress)
    extracted = extract_cached(context, cache)
    features = [f.features for f in extracted]
    # The mixture fits are the slow part of a comparison: a stage line, and a bar over the layers.
    stage(f"compare: concept memberships of {spec} (k={k}, {len(features)} layers)", progress)
    memberships = [
        soft_assignments(f, k, seed=seed)
        for f in progress_bar(None, "memberships", "layer", progress, iterable=features)
    ]
    return Side(spec, encoder, encoder.info(), [f.name for f in extracted], features, memberships)


def _gri_matrix(rows: list[np.ndarray], cols: list[np.ndarray], progress: bool) -> np.ndarray:
    """Layer × layer GRI of two lists of memberships, a bar counting the rows (the pairs are the slow part)."""
    bar = progress_bar(None, "GRI layer pairs", "row", progress, iterable=rows)
    return np.array([[generalized_rand_index(x, y) for y in cols] for x in bar])


def _adjacent_share(matrix: np.ndarray) -> float | None:
    """Share of layers whose most aligned *other* layer is a direct neighbour (square, same-model matrix)."""
    n: int = matrix.shape[0]
    if n < 3:
        return None
    hits = 0
    for i in range(n):
        row = matrix[i].astype(float).copy()
        row[i] = -np.inf
        hits += int(abs(int(np.argmax(row)) - i) == 1)
    return hits / n


def _concepts(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    result = concept_pair_alignment(a, b)
    universal: list[dict[str, float]] = []
    unique: list[dict[str, float]] = []
    for (ca, cb), d in zip(result.matching, result.matched_distance.tolist(), strict=True):
        baseline = float(result.distance[ca].mean())
        entry = {"a": int(ca), "b": int(cb), "distance": d, "baseline": baseline}
        (universal if d < UNIVERSAL_RATIO * baseline else unique).append(entry)
    return {
        "universal": universal,
        "unique_pairs": unique,
        "unmatched_a": [int(c) for c in result.unmatched_a],
        "unmatched_b": [int(c) for c in result.unmatched_b],
        "distance": result.distance.tolist(),
    }


def _nlmcd_concepts(
    a: Side,
    b: Side,
    la: str,
    lb: str,
    split: Any,
    rows: np.ndarray,
    seed: int,
    min_cluster_size: int | None,
    max_tokens: int | None,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    """NLMCD concepts of layer ``la`` of A and ``lb`` of B on the compared samples, prototypes as image ids."""
    from subclassbench.compare.nlmcd import MAX_TOKENS, layer_tokens, nlmcd

    cap = MAX_TOKENS if max_tokens is None else max_tokens
    images = split.images.subset(rows)
    tokens_a = layer_tokens(a.encoder, images, la, cap, seed, batch_size, progress)
    same = a is b and la == lb
    tokens_b = tokens_a if same else layer_tokens(b.encoder, images, lb, cap, seed, batch_size, progress)
    result = nlmcd(tokens_a, tokens_b, seed=seed, min_cluster_size=min_cluster_size, max_tokens=cap)
    ids = split.images.ids
    for side in ("a", "b"):
        result[side]["prototypes"] = [[ids[rows[i]] for i in p] for p in result[side]["prototypes"]]
    return result


def compare(
    model_a: str,
    model_b: str,
    task_name: str,
    weights_a: str | None = None,
    weights_b: str | None = None,
    data: str | None = None,
    layers_a: list[str] | None = None,
    layers_b: list[str] | None = None,
    k: int | None = None,
    max_samples: int | None = 5000,
    seed: int = 0,
    pair: tuple[str, str] | None = None,
    batch_size: int = 256,
    progress: bool = False,
    concepts: str = "gmm",
    min_cluster_size: int | None = None,
    max_tokens: int | None = None,
    cache: FeatureCache | None = None,
) -> dict[str, Any]:
    """The comparison document (JSON-ready); features are read from and stored in ``cache`` when given.

    ``concepts`` picks how the concept list of the ``pair`` layers is made:
    ``gmm`` (the baseline, from the soft GMM memberships behind the GRI) or
    ``nlmcd`` (:func:`subclassbench.compare.nlmcd.nlmcd` on the layers' tokens, with
    ``min_cluster_size`` and ``max_tokens`` passed on; None means its default).
    """
    from subclassbench.tasks.task import load_task

    if concepts not in CONCEPT_METHODS:
        raise SubclassbenchError(f"--concepts must be one of {', '.join(CONCEPT_METHODS)}, not '{concepts}'")

    task = load_task(task_name)
    split = task.load_split(data_path=data)
    if not 0 <= seed < 2**32:
        raise SubclassbenchError(f"--seed must be between 0 and 2**32 - 1, got {seed}")
    rows = _subsample(len(split), max_samples, seed)
    k = task.n_subclasses if k is None else k
    if not 2 <= k <= len(rows):
        raise SubclassbenchError(f"--k must be between 2 and the number of compared samples ({len(rows)}), got {k}")

    if cache is not None:
        cache.check_writable()
    a = _side(model_a, weights_a, split, rows, k, seed, layers_a, batch_size, progress, cache)
    same = model_a == model_b and weights_a == weights_b and layers_a == layers_b
    b = a if same else _side(model_b, weights_b, split, rows, k, seed, layers_b, batch_size, progress, cache)
    stage(f"compare: CKA and GRI of {len(a.layers)} × {len(b.layers)} layer pairs", progress)
    cka = np.array([[linear_cka(x, y) for y in b.features] for x in a.features])
    gri = _gri_matrix(a.memberships, b.memberships, progress)
    # Ground truth as a "model": one-hot memberships over the task's global subclass index.
    truth = split.global_subclass[rows]
    onehot = np.eye(task.n_subclasses)[truth]
    to_truth_a = [generalized_rand_index(m, onehot) for m in a.memberships]
    to_truth_b = to_truth_a if same else [generalized_rand_index(m, onehot) for m in b.memberships]
    within_a = gri if same else _gri_matrix(a.memberships, a.memberships, progress)
    within_b = gri if same else _gri_matrix(b.memberships, b.memberships, progress)
    la, lb = pair or (a.layers[-1], b.layers[-1])
    if la not in a.layers or lb not in b.layers:
        raise SubclassbenchError(f"--pair {la},{lb}: layers must be among {a.layers} and {b.layers}")
    stage(f"compare: {concepts} concepts of {la} × {lb}", progress)
    if concepts == "nlmcd":
        found = _nlmcd_concepts(a, b, la, lb, split, rows, seed, min_cluster_size, max_tokens, batch_size, progress)
    else:
        found = {
            "method": "gmm",
            "universal_ratio": UNIVERSAL_RATIO,
            **_concepts(a.memberships[a.layers.index(la)], b.memberships[b.layers.index(lb)]),
        }
    return {
        "compare_version": COMPARE_VERSION,
        "task": {"name": task.name, "version": task.version, "fingerprint": split.fingerprint, "split": split.split},
        "samples": {"n": len(rows), "of": len(split), "max_samples": max_samples, "seed": seed},
        "memberships": {
            "method": "soft_assignments: standardise, PCA to ≤ 64 dims, GaussianMixture(diag), posteriors",
            "k": k,
            "seed": seed,
        },
        "a": {"spec": a.label, "weights": a.info["weights"], "layers": a.layers},
        "b": {"spec": b.label, "weights": b.info["weights"], "layers": b.layers},
        "cka": cka.tolist(),
        "gri": gri.tolist(),
        "gri_to_labels": {"a": to_truth_a, "b": to_truth_b},
        "adjacent_layer_check": {
            "metric": "gri",
            "a": _adjacent_share(within_a),
            "b": _adjacent_share(within_b),
            "cka_a": _adjacent_share(np.array([[linear_cka(x, y) for y in a.features] for x in a.features]))
            if not same
            else _adjacent_share(cka),
        },
        "concepts": {"layer_a": la, "layer_b": lb, **found},
    }


# --------------------------------------------------------------------------- agreement


AGREEMENT_VERSION = "3"
AGREEMENT_DEFINITION = (
    "agreement(e) = of the samples at least one run classifies correctly after epoch e, the share that every run "
    "classifies correctly (0 when no run is right on any sample), as Pliushch et al. (ECCV 2022) compute it; "
    "lower bound = 1 - min(sum of the runs' error rates, 1); upper bound = lowest / highest accuracy; "
    "if_independent = prod(acc) / (1 - prod(1 - acc)); all_right_share = share of all samples every run gets right"
)


def _split_agreement(correct: np.ndarray) -> dict[str, Any]:
    """Agreement, its bounds and baseline, and the accuracy spread per epoch, for one split (networks × epochs ×
    samples)."""
    accuracy = correct.mean(axis=2)
    return {
        "n_samples": int(correct.shape[2]),
        "agreement": agreement(correct).tolist(),
        "agreement_lower_bound": agreement_lower_bound(correct).tolist(),
        "agreement_upper_bound": agreement_upper_bound(correct).tolist(),
        "agreement_if_independent": agreement_if_independent(correct).tolist(),
        "all_right_share": all_right_share(correct).tolist(),
        "accuracy_mean": accuracy.mean(axis=0).tolist(),
        "accuracy_std": accuracy.std(axis=0).tolist(),
    }


def _read_run(run: Path) -> tuple[dict[str, Any], np.ndarray, list[str] | None, np.ndarray | None, list[str] | None]:
    """A run's card, test log and ids, and train log and ids (None, None when it predates train logging)."""
    from subclassbench.training.trainer import load_correctness, load_train_correctness

    card_path = run / "card.json"
    if not (run / "correctness.npz").is_file() or not card_path.is_file():
        raise SubclassbenchError(f"{run} has no correctness.npz and card.json; pass `subclassbench train` folders")
    try:
        with np.load(run / "correctness.npz", allow_pickle=False) as data:
            test_ids = [str(i) for i in data["test_ids"]] if "test_ids" in data else None
            train_ids = [str(i) for i in data["train_ids"]] if "train_ids" in data else None
        log = load_correctness(run)
        train_log = load_train_correctness(run)
        card = json.loads(card_path.read_text())
        if not isinstance(card, dict) or log.ndim != 2:
            raise ValueError("not a training run's card and correctness log")
        if train_log is not None and train_log.shape[0] != log.shape[0]:
            raise ValueError(f"{train_log.shape[0]} epochs of train correctness but {log.shape[0]} of test")
    except Exception as exc:  # damaged or foreign files: zip, key, value, decode errors
        raise SubclassbenchError(
            f"cannot read the training logs in {run} ({first_line(exc, 80)}); pass `subclassbench train` folders"
        ) from None
    return card, log, test_ids, train_log, train_ids


def agreement_over_runs(run_dirs: list[Path]) -> dict[str, Any]:
    """Per-epoch agreement of several training runs, on the test split and (where logged) the train split.

    The top-level ``agreement``, bounds and accuracy keys are the test split's;
    ``train`` holds the same keys for the train split, or is None when some run
    has no train log (runs trained before protocol v2), which are then listed
    in ``train_not_recorded``.
    """
    if not run_dirs:
        raise SubclassbenchError("pass at least one run folder written by `subclassbench train`")
    cards: list[dict[str, Any]] = []
    logs: list[np.ndarray] = []
    train_logs: list[np.ndarray] = []
    missing: list[str] = []
    test_ids: list[str] | None = None
    train_ids: list[str] | None = None
    for index, run in enumerate(run_dirs):
        card, log, run_test_ids, train_log, run_train_ids = _read_run(run)
        if index and run_test_ids != test_ids:
            raise SubclassbenchError(
                f"{run} was scored on other test samples than {run_dirs[0]}; compare runs of one task"
            )
        test_ids = run_test_ids
        if train_log is None:
            missing.append(str(run))
        else:
            if train_logs and run_train_ids != train_ids:
                raise SubclassbenchError(
                    f"{run} was trained on other samples than the runs before it; compare runs of one train split"
                )
            train_ids = run_train_ids
            train_logs.append(train_log)
        cards.append(card)
        logs.append(log)
    epochs = min(log.shape[0] for log in logs)
    if epochs == 0:
        raise SubclassbenchError("a run has no epochs of correctness logs (trained with --epochs 0); pass trained runs")
    test = _split_agreement(np.stack([log[:epochs] for log in logs]))  # networks × epochs × samples
    train = None if missing else _split_agreement(np.stack([log[:epochs] for log in train_logs]))
    return {
        "agreement_version": AGREEMENT_VERSION,
        "definition": AGREEMENT_DEFINITION,
        "runs": [str(r) for r in run_dirs],
        "archs": [c.get("arch") for c in cards],
        "seeds": [c.get("seed") for c in cards],
        "epochs": epochs,
        **test,
        "train": train,
        "train_not_recorded": missing,
    }


# --------------------------------------------------------------------------- output files


def write_comparison(doc: dict[str, Any], out: Path, label_a: str, label_b: str) -> list[Path]:
    """``compare.json`` and the ``cka`` and ``gri`` heatmaps (PNG, SVG, PDF) in ``out``, written all or nothing."""
    from subclassbench.core.files import atomic_write_many, check_writable_folder
    from subclassbench.core.hashing import canonical_json
    from subclassbench.figures.drawing import heatmap_files

    check_writable_folder(out)
    a, b = doc["a"]["layers"], doc["b"]["layers"]
    files = {out / "compare.json": (json.dumps(json.loads(canonical_json(doc)), indent=2) + "\n").encode()}
    for name, metric in (("cka", "linear CKA"), ("gri", "generalized Rand index")):
        figure = heatmap_files(doc[name], a, b, metric, label_a, label_b)
        files.update({out / f"{name}.{suffix}": data for suffix, data in figure.items()})
    return atomic_write_many(files)


def write_agreement(doc: dict[str, Any], out: Path) -> list[Path]:
    """``agreement.json`` and the agreement figure (PNG, SVG, PDF) in ``out``, written all or nothing."""
    from subclassbench.core.files import atomic_write_many, check_writable_folder
    from subclassbench.figures.drawing import agreement_files

    check_writable_folder(out)
    files = {out / "agreement.json": (json.dumps(doc, indent=2) + "\n").encode()}
    files.update({out / f"agreement.{suffix}": data for suffix, data in agreement_files(doc).items()})
    return atomic_write_many(files)
