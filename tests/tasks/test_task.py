"""Task files: loading, validation, manifests, fingerprints and data sources."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from subclassbench.errors import SubclassbenchError
from subclassbench.tasks.task import Task, builtin_tasks_dir, list_tasks, load_task, read_task_file

SHIPPED = ["cifar10-5", "cifar10-5-semantic", "digits-5", "synthetic-hier"]


def raw_task(name: str) -> dict:
    return read_task_file(builtin_tasks_dir() / f"{name}.yaml")


def test_shipped_tasks_are_listed_and_valid():
    assert set(SHIPPED) <= set(list_tasks())
    for name in SHIPPED:
        task = load_task(name)
        assert task.name == name
        assert len(task.definition_fingerprint) == 64
        assert task.citation and task.description


def test_hierarchies():
    mod5 = load_task("cifar10-5")
    assert [[c.id for c in s.subclasses] for s in mod5.superclasses] == [[c, c + 5] for c in range(5)]
    semantic = load_task("cifar10-5-semantic")
    assert [[c.id for c in s.subclasses] for s in semantic.superclasses] == [[2 * c, 2 * c + 1] for c in range(5)]
    assert semantic.superclasses[0].name == "airplane/automobile"
    digits = load_task("digits-5")
    assert next(s.name for s in digits.superclasses) == "zero/five"


def test_digits_splits_are_the_recorded_stratified_split():
    task = load_task("digits-5")
    ids = {k: [int(i) for i in v["ids"]] for k, v in task.splits.items()}
    all_ids = ids["train"] + ids["val"] + ids["test"]
    assert sorted(all_ids) == list(range(1797))  # disjoint and complete
    digits = load_digits()
    index = np.arange(1797)
    rest, test = train_test_split(index, test_size=0.3, stratify=digits.target, random_state=0)
    _train, val = train_test_split(rest, test_size=1 / 7, stratify=digits.target[rest], random_state=0)
    assert ids["test"] == sorted(test.tolist())
    assert ids["val"] == sorted(val.tolist())
    counts = np.bincount(digits.target[ids["test"]], minlength=10)
    assert counts.min() >= 52 and counts.max() <= 56  # stratified: ~54 per digit


def test_digits_split_labels():
    split = load_task("digits-5").load_split("test")
    assert len(split) == 540
    digit = split.images.labels
    assert np.array_equal(split.superclass, digit % 5)
    assert np.array_equal(split.subclass, digit // 5)


def test_fingerprint_is_stable_and_sensitive():
    a, b = load_task("digits-5"), load_task("digits-5")
    assert a.definition_fingerprint == b.definition_fingerprint
    assert a.load_split().fingerprint == b.load_split().fingerprint
    raw = raw_task("digits-5")
    raw["version"] += 1
    assert Task.from_dict(raw).definition_fingerprint != a.definition_fingerprint
    raw = raw_task("digits-5")
    raw["splits"]["test"]["ids"] = raw["splits"]["test"]["ids"][1:]
    raw["splits"]["test"].pop("manifest_sha256")
    assert Task.from_dict(raw).definition_fingerprint != a.definition_fingerprint


def test_wrong_manifest_hash_is_an_error():
    raw = raw_task("digits-5")
    raw["splits"]["test"]["manifest_sha256"] = "0" * 64
    with pytest.raises(SubclassbenchError, match="does not match the task's manifest hash"):
        Task.from_dict(raw).load_split("test")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("citation"), "'citation' is a required property"),
        (lambda r: r["data"].update(source="ftp"), "data/source"),
        (lambda r: r["hierarchy"]["superclasses"][1]["subclasses"].append({"id": 0}), "appears in two superclasses"),
        (lambda r: r.update(evaluation_split="holdout"), "evaluation_split 'holdout'"),
        (lambda r: r["splits"]["val"]["ids"].append(r["splits"]["train"]["ids"][0]), "share samples"),
        (lambda r: r["hierarchy"]["superclasses"][0]["subclasses"].pop(), "at least 2 subclasses"),
    ],
)
def test_invalid_task_files(mutate, message):
    raw = copy.deepcopy(raw_task("digits-5"))
    mutate(raw)
    with pytest.raises(SubclassbenchError, match=message):
        Task.from_dict(raw, Path("bad.yaml"))


def test_unknown_task_lists_valid_ones():
    with pytest.raises(SubclassbenchError, match=r"unknown task 'digits5'.*digits-5"):
        load_task("digits5")


def test_unparsable_task_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SubclassbenchError, match="cannot parse YAML in"):
        load_task(bad)


def test_synthetic_is_seeded():
    task = load_task("synthetic-hier")
    a, b = task.load_split("test"), task.load_split("test")
    assert a.manifest_digest == b.manifest_digest
    train, val = task.load_split("train"), task.load_split("val")
    assert len(a) == 1200 and len(train) + len(val) == 1200  # val: a hash-selected tenth of the train samples
    assert 60 < len(val) < 180 and not set(train.images.ids) & set(val.images.ids)
    raw = raw_task("synthetic-hier")
    raw["data"]["params"]["seed"] = 1
    assert Task.from_dict(raw).load_split("test").manifest_digest != a.manifest_digest


def test_cifar_without_data_names_the_fix():
    with pytest.raises(SubclassbenchError, match="--data PATH"):
        load_task("cifar10-5").load_split()


def test_cifar_with_incomplete_data_is_an_error(tiny_npz):
    with pytest.raises(SubclassbenchError, match="expected 10000"):
        load_task("cifar10-5").load_split(data_path=tiny_npz)


def test_npz_source(tiny_image_task, tiny_npz):
    split = load_task(tiny_image_task).load_split(data_path=tiny_npz)
    assert len(split) == 40
    assert split.images.sample_shape == (3, 16, 16)
    batch = split.images.load(np.arange(4))
    assert batch.shape == (4, 3, 16, 16) and 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    assert np.array_equal(split.superclass, np.repeat([0, 0, 1, 1], 10))


def test_image_folder_and_npz_agree(tiny_image_task, tiny_npz, tiny_image_folder):
    task = load_task(tiny_image_task)
    from_npz = task.load_split(data_path=tiny_npz)
    from_folder = task.load_split(data_path=tiny_image_folder)
    assert np.array_equal(from_folder.superclass, from_npz.superclass)
    # PNG is lossless: the pixels are identical, only ids and content hashes (file bytes) differ.
    assert np.allclose(from_folder.images.load(np.arange(40)).numpy(), from_npz.images.load(np.arange(40)).numpy())
    assert from_folder.fingerprint != from_npz.fingerprint


def test_data_variants_change_the_fingerprint(tiny_image_task, tiny_npz, tmp_path):
    task = load_task(tiny_image_task)
    with np.load(tiny_npz) as d:
        images, labels = d["images"].copy(), d["labels"]
    images[0, 0, 0, 0] ^= 1  # one pixel differs
    other = tmp_path / "other_test.npz"
    np.savez(other, images=images, labels=labels)
    a, b = task.load_split(data_path=tiny_npz), task.load_split(data_path=other)
    assert a.fingerprint != b.fingerprint
    assert task.summary(a)["definition_fingerprint"] == task.summary(b)["definition_fingerprint"]


def test_corrupt_image_names_the_file(tiny_image_task, tiny_image_folder):
    victim = sorted((tiny_image_folder / "test" / "dog").iterdir())[0]
    victim.write_bytes(b"not a png")
    split = load_task(tiny_image_task).load_split(data_path=tiny_image_folder)
    with pytest.raises(SubclassbenchError, match=f"cannot decode image .*{victim.name}"):
        split.images.load(np.arange(len(split)))


def test_hf_saved_dataset_source(tiny_image_task, tmp_path):
    import datasets
    from PIL import Image

    from tests.conftest import make_images

    images, labels = make_images()
    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(i) for i in images], "label": labels.tolist()})
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "hf"))
    split = load_task(tiny_image_task).load_split(data_path=tmp_path / "hf")
    assert len(split) == 40
    assert np.allclose(split.images.load(np.arange(3)).numpy() * 255, images[:3].transpose(0, 3, 1, 2))


def test_npz_without_labels(tiny_image_task, tmp_path):
    path = tmp_path / "x_test.npz"
    np.savez(path, images=np.zeros((40, 16, 16, 3), np.uint8))
    with pytest.raises(SubclassbenchError, match="must hold arrays 'images' and 'labels'"):
        load_task(tiny_image_task).load_split(data_path=path)


def test_summary_json_shape():
    summary = load_task("digits-5").summary()
    json.dumps(summary)
    assert {"name", "version", "fingerprint", "superclasses"} <= set(summary)
    assert summary["superclasses"][0] == {
        "name": "zero/five",
        "id": 0,
        "subclasses": [0, 5],
        "subclass_names": ["zero", "five"],
        "source": [0],
        "target": [5],
    }


def test_task_name_must_match_file(tmp_path, monkeypatch):
    raw = raw_task("digits-5")
    raw["name"] = "other"
    (tmp_path / "digits-5.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SUBCLASSBENCH_TASKS", str(tmp_path))
    with pytest.raises(SubclassbenchError, match="must equal the file name"):
        load_task("digits-5")


def test_split_with_no_sample_in_the_hierarchy(tmp_path, tiny_image_task, tiny_npz):
    raw = yaml.safe_load(tiny_image_task.read_text())
    for sup in raw["hierarchy"]["superclasses"]:
        for sub in sup["subclasses"]:
            sub["id"] = f"n{sub['id']:08d}"  # WNID-like ids that the npz labels never match
    raw["splits"]["test"].pop("expected_count")
    with pytest.raises(SubclassbenchError, match="no samples whose label is in the hierarchy"):
        Task.from_dict(raw).load_split(data_path=tiny_npz)
