"""Transfer protocol: rank metrics, tunnel summary, probes, and the evaluate integration."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import EvaluationRequest, evaluate
from subclassbench.features.extraction import LayerFeatures
from subclassbench.metrics.layers import alignment, effective_rank, numerical_rank, pearson, tunnel_summary
from subclassbench.results.result import validate_result
from subclassbench.scoring.probes import ProbeRecipe, fit_probe
from subclassbench.scoring.transfer import OODPlan, ProbeSet, TransferPlan, score_transfer, strength, summarize_transfer
from subclassbench.tasks.task import Task, builtin_tasks_dir, load_task, read_task_file
from tests.conftest import add_transfer

# ----------------------------------------------------------------------------- rank


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_numerical_rank_of_known_rank_matrices(rank):
    rng = np.random.RandomState(rank)
    x = rng.randn(200, rank) @ rng.randn(rank, 32)
    assert numerical_rank(x) == rank
    assert numerical_rank(x + 1e-9 * rng.randn(200, 32)) == rank  # tiny noise stays below 1e-3·σ_max


def test_effective_rank_bounds_and_exact_cases():
    q, _ = np.linalg.qr(np.random.RandomState(0).randn(50, 50))
    assert effective_rank(q[:, :7] * 5.0) == pytest.approx(7.0)  # 7 equal singular values → exactly 7
    x = np.random.RandomState(1).randn(100, 20)
    assert 1.0 <= effective_rank(x) <= numerical_rank(x) == 20
    assert effective_rank(np.outer(np.arange(1, 11), np.ones(5))) == pytest.approx(1.0)
    assert effective_rank(np.zeros((4, 3))) == 0.0 and numerical_rank(np.zeros((4, 3))) == 0


# ----------------------------------------------------------------------------- tunnel summary


NAMES = ["a", "b", "c", "d"]


def test_tunnel_rule_of_harun_et_al():
    flat_id = [0.9, 0.9, 0.9, 0.9]
    rising = tunnel_summary(NAMES[:3], flat_id[:3], [0.2, 0.5, 0.9])
    assert rising["ood_retained"] == 100.0 and not rising["tunnel"]  # best at the penultimate layer: none
    dip = tunnel_summary(NAMES, flat_id, [0.4, 0.8, 0.6, 0.4])
    assert dip["tunnel"] and dip["best_layer"] == "b" and dip["ood_retained"] == pytest.approx(50.0)
    assert tunnel_summary(NAMES, flat_id, [0.5, 0.8, 0.8, 0.4])["best_layer"] == "b"  # ties: the shallowest
    tie = tunnel_summary(NAMES, flat_id, [0.5, 0.8, 0.6, 0.8])  # an earlier layer equal to the last: no tunnel
    assert not tie["tunnel"] and tie["ood_retained"] == 100.0
    assert not tunnel_summary(NAMES[:2], flat_id[:2], [0.0, 0.0])["tunnel"]  # nothing to lose


def test_duplicate_layers_count_once():
    # 'c' equals 'd' (a pooled last block that is the embedding): without it the best layer is 'd' itself.
    curve = [0.5, 0.6, 0.9, 0.9]
    with_duplicate = tunnel_summary(NAMES, [0.1, 0.2, 0.3, 0.4], curve)
    deduplicated = tunnel_summary(NAMES, [0.1, 0.2, 0.3, 0.4], curve, [True, True, False, True])
    assert not with_duplicate["tunnel"] and not deduplicated["tunnel"]
    # Pearson over 3 distinct points, not 4 (the duplicated point would count twice).
    assert deduplicated["pearson_id_ood"] == pytest.approx(pearson([0.1, 0.2, 0.4], [0.5, 0.6, 0.9]))
    assert deduplicated["pearson_id_ood"] != pytest.approx(with_duplicate["pearson_id_ood"])


@pytest.mark.parametrize(
    ("retained", "grade"),
    [(100.0, "negligible"), (95.0, "negligible"), (94.9, "weak"), (90.0, "weak"), (85.0, "medium"), (79.9, "strong")],
)
def test_tunnel_strength_classes(retained, grade):
    assert strength(retained) == grade


def test_pearson_and_alignment():
    assert pearson([0.1, 0.2, 0.3], [0.2, 0.4, 0.6]) == pytest.approx(1.0)
    assert pearson([0.1, 0.2, 0.3], [0.6, 0.4, 0.2]) == pytest.approx(-1.0)
    assert pearson([0.5, 0.5], [0.1, 0.2]) is None and pearson([0.5], [0.1]) is None
    assert alignment(0.2, 0.9, 0.2, 0.1) == 0.0  # ID at chance
    assert alignment(1.0, 1.0, 0.25, 0.5) == pytest.approx(0.75 * 0.5)
    assert alignment(0.1, 0.9, 0.2, 0.2) < 0  # below chance on one side


# ----------------------------------------------------------------------------- probes


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


# ----------------------------------------------------------------------------- a built-in tunnel


def tunnel_layers(tunnel: bool) -> tuple[dict[str, list[LayerFeatures]], TransferPlan]:
    """ID labels live in dims 0–2, OOD labels in dims 3–5; a tunnel's deep layers drop dims 3–5."""
    rng = np.random.RandomState(0)
    data = {}
    for split, n in (("train", 600), ("test", 300)):
        y_id, y_ood = rng.randint(0, 3, n), rng.randint(0, 3, n)
        signal = np.concatenate([np.eye(3)[y_id], np.eye(3)[y_ood]], axis=1) * 3.0
        data[split] = (signal, y_id, y_ood, rng.randn(n, 6))
    noise_per_layer = [3.0, 0.3, 0.3, 0.3] if tunnel else [3.0, 2.0, 1.0, 0.1]
    features: dict[str, list[LayerFeatures]] = {}
    for split, (signal, _, _, noise) in data.items():
        layers = []
        for i, level in enumerate(noise_per_layer):
            x = signal + level * noise
            if tunnel and i >= 2:
                x[:, 3:] = level * noise[:, 3:]  # deep layers discard the OOD-relevant directions
            layers.append(LayerFeatures(f"layer{i}", i / 3, "none", x.astype(np.float32)))
        features[split] = layers
    all_train, all_test = np.arange(600), np.arange(300)
    plan = TransferPlan(
        id_train=ProbeSet("train", all_train, data["train"][1]),
        id_test=ProbeSet("test", all_test, data["test"][1]),
        n_id_classes=3,
        id_labels="superclass",
        ood=[
            OODPlan(
                "ood",
                "ood-task",
                ProbeSet("train", all_train, data["train"][2]),
                ProbeSet("test", all_test, data["test"][2]),
                3,
            )
        ],
    )
    return features, plan


def test_built_in_tunnel_is_detected():
    features, plan = tunnel_layers(tunnel=True)
    per_layer = [layer.scores for layer in score_transfer(features, plan)]
    summary = summarize_transfer([f.name for f in features["train"]], per_layer, plan)
    assert summary["tunnel"] == {"start": "layer1", "strength": "strong"}
    assert summary["ood_retained"] < 60  # deep layers fall to chance (1/3) on OOD
    assert summary["ood_sets"][0]["tunnel"] == summary["tunnel"]  # one set: its curve is the mean curve
    assert per_layer[-1]["ood"]["ood"]["acc"] < 0.5 and per_layer[1]["ood"]["ood"]["acc"] > 0.95
    assert all(layer["id_acc"] > 0.95 for layer in per_layer[1:])  # ID stays high through the tunnel


def test_no_tunnel_retains_everything():
    features, plan = tunnel_layers(tunnel=False)
    per_layer = [layer.scores for layer in score_transfer(features, plan)]
    summary = summarize_transfer([f.name for f in features["train"]], per_layer, plan)
    assert summary["ood_retained"] == 100.0
    assert summary["tunnel"] is None and summary["ood_sets"][0]["best_layer"] == "layer3"
    assert summary["pearson_id_ood"] > 0.5


# ----------------------------------------------------------------------------- tasks and evaluate


def test_shipped_transfer_splits():
    semantic = load_task("cifar10-5-semantic").transfer
    assert semantic.source == (0, 2, 4, 6, 8) and semantic.target == (1, 3, 5, 7, 9)
    digits = load_task("digits-5").transfer
    assert digits.source == (0, 1, 2, 3, 4) and digits.id_train_split == "train"
    synthetic = load_task("synthetic-hier").transfer
    assert len(synthetic.source) == 4 and len(synthetic.target) == 8


def test_transfer_plan_from_digits():
    task = load_task("digits-5")
    splits = {name: task.load_split(name) for name in ("train", "test")}
    plan = TransferPlan.from_task(task, splits, {})
    train_digits = splits["train"].images.labels[plan.id_train.rows]
    assert set(train_digits) == {0, 1, 2, 3, 4}
    assert set(splits["test"].images.labels[plan.shift.rows]) == {5, 6, 7, 8, 9}
    assert np.array_equal(plan.shift.labels, splits["test"].images.labels[plan.shift.rows] - 5)
    assert np.array_equal(plan.refit_test.labels, splits["test"].images.labels[plan.refit_test.rows] - 5)
    assert len(plan.id_test.rows) + len(plan.shift.rows) == len(splits["test"])
    assert plan.ood == []  # digits-5 has no class-disjoint OOD set: its shift is not OOD


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t["transfer"].update(target=[0, 5, 6, 7, 8, 9]), "share subclasses"),
        (lambda t: t["transfer"].update(target=[6, 7, 8, 9]), "needs at least one source and one target"),
        (lambda t: t["transfer"].update(ood_split="holdout"), "transfer split 'holdout'"),
    ],
)
def test_invalid_transfer_blocks(mutate, message):
    raw = copy.deepcopy(read_task_file(builtin_tasks_dir() / "digits-5.yaml"))
    mutate(raw)
    with pytest.raises(SubclassbenchError, match=message):
        Task.from_dict(raw)


def test_evaluate_runs_both_families_by_default():
    result = evaluate(EvaluationRequest(model="builtin:mlp", task="synthetic-hier", progress=False))
    validate_result(result)
    assert result["metrics"] == ["clusterability", "transfer"]
    assert all({"clusterability", "transfer"} <= set(layer) for layer in result["layers"])
    summary = result["summary"]
    assert summary["ood_retained"] is None and summary["tunnel"] is None  # no OOD set: no OOD claim
    shift = summary["transfer"]["subpopulation_shift"]
    assert 0 < shift["subpop_refit"]["retained"] <= 100
    assert set(result["task"]["splits"]) == {"test", "train", "val"}
    assert summary["committed_layer"] in [layer["name"] for layer in result["layers"]]
    assert summary["selection"]["split"] == "val"


def test_metrics_selection():
    only = evaluate(
        EvaluationRequest(model="builtin:identity", task="synthetic-hier", metrics=["transfer"], progress=False)
    )
    validate_result(only)
    assert only["metrics"] == ["transfer"] and "clusterability" not in only["layers"][0]
    with pytest.raises(SubclassbenchError, match="unknown metric 'speed'"):
        evaluate(EvaluationRequest(task="digits-5", metrics=["speed"], progress=False))


def add_train_split_and_transfer(task_file, expected_count: int | None = None) -> dict:
    """Give the tiny image task a train split and a transfer block (cat, car → dog, truck)."""
    raw = add_transfer(yaml.safe_load(task_file.read_text()), expected_count)
    task_file.write_text(yaml.safe_dump(raw))
    return raw


def test_transfer_needs_the_train_split(tiny_image_task, tiny_npz):
    add_train_split_and_transfer(tiny_image_task)
    request = EvaluationRequest(
        model="builtin:cifar_resnet20", task=str(tiny_image_task), data=str(tiny_npz), progress=False
    )
    # tiny_npz holds one split only: by default transfer is skipped with a note …
    result = evaluate(request)
    assert result["metrics"] == ["clusterability"] and any("transfer skipped" in n for n in result["notes"])
    # … and asking for it explicitly is an error.
    request.metrics = ["transfer"]
    with pytest.raises(SubclassbenchError, match="transfer needs the task's train split"):
        evaluate(request)


def test_task_without_transfer_rejects_explicit_transfer(tiny_image_task, tiny_npz):
    request = EvaluationRequest(task=str(tiny_image_task), data=str(tiny_npz), metrics=["transfer"], progress=False)
    with pytest.raises(SubclassbenchError, match="defines no transfer splits"):
        evaluate(request)


def test_transfer_end_to_end_on_an_image_folder_of_npz_splits(tiny_image_task, tmp_path):
    from tests.conftest import make_images

    add_train_split_and_transfer(tiny_image_task, expected_count=80)
    folder = tmp_path / "data"
    folder.mkdir()
    for split, n, seed in (("train", 20, 1), ("test", 10, 0)):
        images, labels = make_images(n_per_class=n, seed=seed)
        np.savez(folder / f"tiny_{split}.npz", images=images, labels=labels)
    result = evaluate(
        EvaluationRequest(model="builtin:cifar_resnet20", task=str(tiny_image_task), data=str(folder), progress=False)
    )
    validate_result(result)
    assert result["metrics"] == ["clusterability", "transfer"]
    assert result["task"]["splits"]["train"]["n_samples"] == 80
    transfer = result["summary"]["transfer"]
    assert transfer["n_id_train"] == 40 and transfer["subpopulation_shift"]["n_shift"] == 20


def test_single_file_serves_only_the_evaluated_split(tiny_image_task, tiny_npz):
    task = Task.from_dict(add_train_split_and_transfer(tiny_image_task))
    with pytest.raises(SubclassbenchError, match="holds a single split"):
        task.load_split("train", tiny_npz, primary=False)


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
