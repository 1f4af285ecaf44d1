"""OOD sets in the evaluation pipeline (subclassbench.evaluation.pipeline): a class-split pair reports its OOD
set and the tunnel rule, sets seen in training flagged, a Hub set on a generated stand-in, and every bad
OOD set or --ood-data refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from subclassbench.cli import main
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.results.result import Result
from tests.conftest import REPO, add_transfer, make_images, tiny_task_raw


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
    assert doc["protocol"]["version"] == "3"
    transfer = doc["summary"]["transfer"]
    assert [s["name"] for s in transfer["ood_sets"]] == ["digits-ood5"]
    ood = transfer["ood_sets"][0]
    assert ood["seen_in_training"] is False and ood["chance"] == 0.2 and ood["n_test"] > 200
    assert transfer["subpopulation_shift"] is None and transfer["id_labels"] == "subclass"
    tunnel = transfer["tunnel"]
    assert tunnel is None or tunnel["strength"] in ("negligible", "weak", "medium", "strong")
    assert doc["summary"]["tunnel"] == tunnel and doc["summary"]["ood_retained"] == transfer["ood_retained"]
    # v3: Harun et al.'s mean over OOD sets ranks; the mean curve's value is kept beside it (one set: equal).
    assert transfer["ood_retained"] == pytest.approx(np.mean([s["ood_retained"] for s in transfer["ood_sets"]]))
    assert transfer["ood_retained_mean_curve"] == pytest.approx(transfer["ood_retained"])
    # The layer was chosen on the test split; the run card says the network trained on 'train'.
    assert doc["summary"]["selection"]["seen_in_training"] is False
    assert "'train' split" in doc["summary"]["selection"]["seen_basis"]
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


def test_a_hand_edited_mean_curve_retention_is_refused(id5_run):
    result = evaluate(
        EvaluationRequest(model="builtin:digits_cnn", weights=str(id5_run), task="digits-id5", progress=False)
    )
    doc = json.loads(result.to_json())
    doc["summary"]["transfer"]["ood_retained_mean_curve"] -= 0.5
    with pytest.raises(SubclassbenchError, match="ood_retained_mean_curve"):
        Result.from_doc(doc)


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


def test_ood_data_that_nothing_would_read_is_refused():
    with pytest.raises(SubclassbenchError, match="does not list; its OOD sets: none"):
        evaluate(EvaluationRequest(task="synthetic-hier", ood_data={"x": "/tmp"}, progress=False))
    with pytest.raises(SubclassbenchError, match="feeds the transfer metrics"):  # never silently ignored
        evaluate(EvaluationRequest(task="digits-id5", metrics=["clusterability"], ood_data={"digits-ood5": "/tmp"}))
    with pytest.raises(SubclassbenchError, match="feeds the transfer metrics"):  # a task without transfer
        evaluate(EvaluationRequest(task="digits-ood5", ood_data={"x": "/tmp"}, progress=False))


def test_limit_notes_name_the_task_or_ood_set_of_each_split():
    import subclassbench

    result = subclassbench.evaluate("builtin:digits_cnn", "digits-id5", pretrained=False, limit=40, bootstrap=0)
    notes = [n for n in result.notes if "--limit" in n]
    assert any(n.startswith("split 'train' of digits-id5:") for n in notes)
    assert any(n.startswith("split 'train' of digits-ood5:") for n in notes)  # the OOD set's own train split
