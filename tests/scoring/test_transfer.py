"""The transfer family (subclassbench.scoring.transfer): tunnel strength classes, a built-in tunnel detected
and its absence, and the transfer plan of a task (rank metrics and the tunnel rule: metrics/test_layers.py;
probes: scoring/test_probes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from subclassbench.errors import SubclassbenchError
from subclassbench.features.extraction import LayerFeatures
from subclassbench.scoring.transfer import OODPlan, ProbeSet, TransferPlan, score_transfer, strength, summarize_transfer
from subclassbench.tasks.task import load_task

# ----------------------------------------------------------------------------- tunnel strength


@pytest.mark.parametrize(
    ("retained", "grade"),
    [(100.0, "negligible"), (95.0, "negligible"), (94.9, "weak"), (90.0, "weak"), (85.0, "medium"), (79.9, "strong")],
)
def test_tunnel_strength_classes(retained, grade):
    assert strength(retained) == grade


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


# ----------------------------------------------------------------------------- the transfer plan of a task


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


# --------------------------------------------------------------------------- edges, named


def test_the_rank_subsample_is_fixed_distinct_and_spread_over_all_rows():
    from subclassbench.scoring.protocol import RANK_MAX_ROWS
    from subclassbench.scoring.transfer import _rank_rows

    assert np.array_equal(_rank_rows(RANK_MAX_ROWS), np.arange(RANK_MAX_ROWS))  # up to the cap: every row
    n = 3 * RANK_MAX_ROWS
    rows = _rank_rows(n)
    assert len(rows) == len(np.unique(rows)) == RANK_MAX_ROWS and np.all(np.diff(rows) > 0)
    assert rows[0] >= 0 and rows[-1] < n and rows[-1] > 2 * RANK_MAX_ROWS  # drawn from all rows, not the first
    assert np.array_equal(rows, _rank_rows(n))  # seed 0: the same rows every time


def test_a_flat_curve_is_decided_at_its_one_sample_margins():
    from subclassbench.scoring.transfer import flat_curve

    # Four test images: a margin of 0.25 (exact in binary), chance 0.25.
    assert flat_curve([0.5, 0.75], chance=0.25, n_test=4)  # spread of exactly one image: flat
    assert not flat_curve([0.25, 0.75], chance=0.25, n_test=4)
    assert flat_curve([0.0, 0.5], chance=0.25, n_test=4)  # never above chance by more than one image
    assert flat_curve([0.0, 0.4], chance=0.25, n_test=4)
    assert not flat_curve([0.0, 0.75], chance=0.25, n_test=4)


def test_a_split_without_the_transfer_subclasses_is_named():
    task = load_task("digits-5")  # transfer source: subclasses 0-4
    other = load_task("digits-ood5").load_split("test")  # subclasses 5-9 only
    with pytest.raises(SubclassbenchError) as raised:
        TransferPlan.from_task(task, {"train": other, "test": other}, {})
    assert str(raised.value) == (
        "task 'digits-5': split 'train' has no samples of transfer subclasses [0, 1, 2, 3]; "
        "fix the task's transfer block"
    )
