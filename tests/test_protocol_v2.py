"""Protocol v2: reconstruction accuracy (Yang et al.), Ward overclustering (Nguyen & Kornblith), class-disjoint
OOD sets and the tunnel rule (Harun et al.), and the bad inputs around them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.cli import main
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.metrics.partition import purity
from subclassbench.results.result import Result
from subclassbench.scoring.clusterability import reconstruct, score_clusterability
from subclassbench.scoring.protocol import PROTOCOL, protocol_fingerprint, protocol_v1_fingerprint
from subclassbench.tasks.task import SplitData, Task
from tests.conftest import REPO, add_transfer, make_images, tiny_task_raw

# ----------------------------------------------------------------------------- helpers


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


# ----------------------------------------------------------------------------- reconstruction (Yang et al.)


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


# ----------------------------------------------------------------------------- Ward overclustering


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


# ----------------------------------------------------------------------------- the protocol record


def test_protocol_v2_is_its_own_version_and_v1_stays_frozen():
    assert PROTOCOL["version"] == "2" and protocol_fingerprint() != protocol_v1_fingerprint()
    assert protocol_v1_fingerprint().startswith("d9eae7dacb55")  # the fingerprint the v1 board records
    assert "holdout" in PROTOCOL["transfer"]["epoch_selection"]


def test_a_protocol_v1_result_names_the_fix(tmp_path):
    archived = sorted((REPO / "leaderboard/v1/results").glob("*/*.json"))[0]
    with pytest.raises(SubclassbenchError, match=r"protocol v1 result.*re-run the evaluation"):
        Result.read(archived)


# ----------------------------------------------------------------------------- OOD sets end to end


@pytest.fixture(scope="module")
def id5_run(tmp_path_factory) -> Path:
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    out = tmp_path_factory.mktemp("runs") / "id5"
    train(load_task("digits-id5"), "digits_cnn", "subclass", out, Recipe(epochs=8), progress=False)
    return out


def test_class_split_pair_reports_ood_sets_and_the_tunnel_rule(id5_run):
    result = evaluate(
        EvaluationRequest(model="builtin:digits_cnn", weights=str(id5_run), task="digits-id5", progress=False)
    )
    doc = result.doc
    assert doc["protocol"]["version"] == "2"
    transfer = doc["summary"]["transfer"]
    assert [s["name"] for s in transfer["ood_sets"]] == ["digits-ood5"]
    ood = transfer["ood_sets"][0]
    assert ood["seen_in_training"] is False and ood["chance"] == 0.2 and ood["n_test"] > 200
    assert transfer["subpopulation_shift"] is None and transfer["id_labels"] == "subclass"
    tunnel = transfer["tunnel"]
    assert tunnel is None or tunnel["strength"] in ("negligible", "weak", "medium", "strong")
    assert doc["summary"]["tunnel"] == tunnel and doc["summary"]["ood_retained"] == transfer["ood_retained"]
    assert doc["task"]["ood_sets"][0]["task"] == "digits-ood5"
    for layer in doc["layers"]:
        c = layer["clusterability"]
        assert {"reconstruction_acc", "within_superclass_acc", "superclass_acc"} <= set(c)
        assert c["reconstruction_acc"] <= c["superclass_acc"] + 1e-12
        assert [r["factor"] for r in c["ward"]["overcluster"]] == [1, 2, 3, 4, 5]
        assert set(layer["transfer"]["ood"]) == {"digits-ood5"}
    assert "committed_reconstruction_acc" in doc["summary"]
    Result.from_doc(json.loads(result.to_json()))  # integrity holds on the written form


def test_an_encoder_trained_on_the_ood_classes_is_flagged():
    # The packaged digits CNN was trained on all ten digits (digits-5): digits-ood5's classes are not OOD to it.
    result = evaluate(EvaluationRequest(model="builtin:digits_cnn.digits5_coarse", task="digits-id5", progress=False))
    assert result.summary["transfer"]["ood_sets"][0]["seen_in_training"] is True


def test_a_hand_edited_tunnel_is_refused(id5_run):
    result = evaluate(
        EvaluationRequest(model="builtin:digits_cnn", weights=str(id5_run), task="digits-id5", progress=False)
    )
    doc = json.loads(result.to_json())
    doc["summary"]["tunnel"] = doc["summary"]["transfer"]["tunnel"] = {"start": "stem", "strength": "strong"}
    with pytest.raises(SubclassbenchError, match="tunnel"):
        Result.from_doc(doc)


def save_hf_stand_in(path: Path, size: int, classes: int) -> Path:
    """A generated stand-in for a Hub OOD set, saved as ``datasets.save_to_disk`` writes it."""
    import datasets
    from PIL import Image

    parts = {}
    for split, n, seed in (("train", 12, 0), ("test", 6, 1)):
        rng = np.random.RandomState(seed)
        labels = [c for c in range(classes) for _ in range(n)]
        images = []
        for c in labels:
            base = np.full((size, size, 3), 25 * c, dtype=np.float64) + rng.rand(size, size, 3) * 40
            images.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)))
        features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
        parts[split] = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    datasets.DatasetDict(parts).save_to_disk(str(path))
    return path


def tiny_task_with_ood(tmp_path: Path, ood: dict) -> Path:
    raw = add_transfer(tiny_task_raw())
    raw["transfer"]["ood_sets"] = [ood]
    path = tmp_path / "tiny-images.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    for split, n, seed in (("train", 20, 1), ("test", 10, 0)):
        images, labels = make_images(n_per_class=n, seed=seed)
        np.savez(folder / f"tiny_{split}.npz", images=images, labels=labels)
    return path


def test_a_hub_ood_set_runs_on_a_generated_stand_in(tmp_path):
    task = tiny_task_with_ood(tmp_path, {"name": "svhn-ood"})
    stand_in = save_hf_stand_in(tmp_path / "svhn", 32, 10)
    result = evaluate(
        EvaluationRequest(
            model="builtin:cifar_resnet20",
            task=str(task),
            data=str(tmp_path / "data"),
            ood_data={"svhn-ood": str(stand_in)},
            layers=["layer1.0", "layer3.2", "embedding"],
            progress=False,
        )
    )
    sets = result.summary["transfer"]["ood_sets"]
    assert [s["name"] for s in sets] == ["svhn-ood"] and sets[0]["n_train"] == 120 and sets[0]["n_test"] == 60
    assert any("not the canonical" in note for note in result.notes)  # a stand-in is never passed off as SVHN
    # Without its data the set is left out with a note, never faked.
    offline = evaluate(
        EvaluationRequest(
            model="builtin:cifar_resnet20", task=str(task), data=str(tmp_path / "data"), layers=["embedding"],
            progress=False,
        )
    )  # fmt: skip
    assert offline.summary["transfer"]["ood_sets"] == [] and offline.summary["tunnel"] is None
    assert any("OOD set 'svhn-ood' left out" in note for note in offline.notes)


@pytest.mark.parametrize(
    ("ood", "extra", "message"),
    [
        ({"name": "nope-ood"}, [], "unknown task 'nope-ood'|no task named 'nope-ood'|task 'nope-ood'"),
        ({"name": "svhn-ood", "train_split": "validation"}, [], "uses split 'validation'"),
        ({"name": "svhn-ood"}, ["--ood-data", "cifar100-ood=/tmp"], "does not list"),
        ({"name": "svhn-ood"}, ["--ood-data", "svhn-ood"], "needs NAME=PATH"),
        ({"name": "svhn-ood", "train_split": "test"}, [], "different splits"),
        ({"name": "svhn-ood"}, ["--ood-data", "svhn-ood=/a", "--ood-data", "svhn-ood=/b"], "twice"),
    ],
)
def test_bad_ood_sets_are_one_line_errors(tmp_path, capsys, ood, extra, message):
    task = tiny_task_with_ood(tmp_path, ood)
    try:
        main(
            ["evaluate", "--model", "builtin:cifar_resnet20", "--task", str(task), "--data", str(tmp_path / "data"),
             "--out", str(tmp_path / "r.json"), "-q", *extra]
        )  # fmt: skip
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "\n" not in err and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "r.json").exists()


def test_an_ood_set_sharing_the_tasks_classes_is_refused(tmp_path, capsys):
    # cifar10-ood5 is CIFAR-10 classes 5-9; a task over all CIFAR-10 classes shares them.
    raw = yaml.safe_load((REPO / "subclassbench/tasks/builtin/cifar10-5.yaml").read_text())
    raw["transfer"]["ood_sets"] = [{"name": "cifar10-ood5"}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    # Refused before any data is needed (cifar10-5's images are not shipped).
    with pytest.raises(SubclassbenchError, match="shares classes with the task itself"):
        evaluate(EvaluationRequest(model="builtin:cifar_resnet20", task=str(path), progress=False))


def test_the_leaderboard_marks_ood_sets_seen_in_training(tmp_path):
    """A digits-5-trained encoder submitted on digits-id5 saw digits-ood5's classes: its row says so."""
    from subclassbench.leaderboard.board import build
    from subclassbench.leaderboard.submissions import SubmitRequest, submit

    subs = tmp_path / "submissions"
    subs.mkdir()
    submit(
        SubmitRequest(
            name="coarse-on-id5",
            model="builtin:digits_cnn.digits5_coarse",
            tasks=["digits-id5"],
            submissions=subs,
            labels="superclass",
            label_task="digits-5",
            training_data="digits-5 train split",
            license="MIT",
            citation="This test suite.",
            progress=False,
        )
    )
    build(subs, tmp_path / "lb")
    row = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["tasks"]["digits-id5"][0]
    assert row["ood_seen_in_training"] == ["digits-ood5"] and row["ood_sets"] == ["digits-ood5"]
    assert "(seen in training)" in (tmp_path / "lb" / "README.md").read_text()


def test_ward_cuts_cap_k_at_the_number_of_points():
    from subclassbench.metrics.clustering import ward_cuts

    x = np.asarray([[0.0, 1.0], [0.0, 1.1], [5.0, 0.0]], dtype=np.float32)
    cuts = ward_cuts(x, [2, 10])
    assert sorted(cuts) == [2, 3]  # 10 clusters of 3 points is 3 singletons
    assert cuts[2][0] == cuts[2][1] != cuts[2][2] and len(set(cuts[3].tolist())) == 3


def test_ood_data_that_nothing_would_read_is_refused():
    with pytest.raises(SubclassbenchError, match="does not list; its OOD sets: none"):
        evaluate(EvaluationRequest(task="synthetic-hier", ood_data={"x": "/tmp"}, progress=False))
    with pytest.raises(SubclassbenchError, match="feeds the transfer metrics"):  # never silently ignored
        evaluate(EvaluationRequest(task="digits-id5", metrics=["clusterability"], ood_data={"digits-ood5": "/tmp"}))
    with pytest.raises(SubclassbenchError, match="feeds the transfer metrics"):  # a task without transfer
        evaluate(EvaluationRequest(task="digits-ood5", ood_data={"x": "/tmp"}, progress=False))
