"""The ImageNet source (subclassbench.tasks.imagenet) on a fake ImageNet tree: BREEDS tasks evaluated, hash
splits, flat val folders, saved Hub datasets, decoding recorded, missing or corrupt data in one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.results.result import validate_result
from subclassbench.tasks.task import load_task

runner = CliRunner()


VAL_PER_CLASS, TRAIN_PER_CLASS = 3, 5


def _living17_classes() -> list[tuple[str, int]]:
    task = load_task("breeds-living17")
    return sorted((c.id, c.index) for s in task.superclasses for c in s.subclasses)


def _jpeg(path: Path, rng: np.random.RandomState, index: int, size: tuple[int, int] = (20, 14)) -> None:
    from PIL import Image

    colour = np.array([(index * 37) % 255, (index * 91) % 255, (index * 53) % 255], dtype=float)
    pixels = np.clip(colour + rng.randn(size[1], size[0], 3) * 20, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory) -> Path:
    """train/<wnid>/*.JPEG and val/<wnid>/*.JPEG for living17's 68 classes (a few tiny images each)."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.RandomState(0)
    for n, (wnid, _) in enumerate(_living17_classes()):
        for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{n * 10 + i:08d}.JPEG"
                _jpeg(folder / name, rng, n)
    return root


def _request(task: str, data: Path, **kw) -> EvaluationRequest:
    return EvaluationRequest(model="builtin:digits_cnn.digits5_coarse", task=task, data=str(data), progress=False, **kw)


@pytest.mark.parametrize("task", ["breeds-living17", "breeds-living17-shuffled"])
def test_evaluate_living17_on_a_fake_imagenet(fake_imagenet, task):
    result = evaluate(_request(task, fake_imagenet))
    validate_result(result)
    assert result["task"]["n_samples"] == 68 * VAL_PER_CLASS
    assert result["metrics"] == ["clusterability", "transfer"]
    test = result["task"]["splits"]["test"]
    assert test["canonical"] is False and test["decoding"]["center_crop"] == [224, 224]
    assert any("not the canonical 3400" in note for note in result["notes"])
    train = result["task"]["splits"]["train"]["n_samples"]
    assert 0 < train < 68 * TRAIN_PER_CLASS  # the hash-selected val images are held out
    final = result["layers"][-1]
    assert 0.0 <= final["clusterability"]["ami"] <= 1.0
    assert 0.0 <= final["transfer"]["id_acc"] <= 1.0 and 0.0 <= final["transfer"]["subpop_shift_acc"] <= 1.0


def test_hash_range_splits_are_disjoint_and_cover_the_source(fake_imagenet):
    task = load_task("breeds-living17")
    train = task.load_split("train", fake_imagenet, primary=False)
    val = task.load_split("val", fake_imagenet, primary=False)
    assert not set(train.images.ids) & set(val.images.ids)
    assert len(train) + len(val) == 68 * TRAIN_PER_CLASS


def test_flat_val_folder_with_a_label_file_gives_the_same_manifest(fake_imagenet, tmp_path):
    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    rows = []
    for path in sorted((fake_imagenet / "val").glob("*/*.JPEG")):
        (flat / "val" / path.name).write_bytes(path.read_bytes())
        rows.append({"ImageId": path.stem, "PredictionString": f"{path.parent.name} 1 2 3 4"})
    with (flat / "LOC_val_solution.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ImageId", "PredictionString"])
        writer.writeheader()
        writer.writerows(rows)
    task = load_task("breeds-living17")
    reference = task.load_split("test", fake_imagenet)
    from_csv = task.load_split("test", flat)
    assert from_csv.manifest_digest == reference.manifest_digest
    # The text form with ImageNet class indices instead of WNIDs.
    (flat / "LOC_val_solution.csv").unlink()
    index = dict(_living17_classes())
    lines = [f"{p.name} {index[p.parent.name]}" for p in sorted((fake_imagenet / "val").glob("*/*.JPEG"))]
    (flat / "val_labels.txt").write_text("\n".join(lines) + "\n")
    assert task.load_split("test", flat).manifest_digest == reference.manifest_digest


def test_saved_hugging_face_imagenet_gives_the_same_manifest(fake_imagenet, tmp_path):
    import datasets

    index = dict(_living17_classes())
    paths = sorted((fake_imagenet / "val").glob("*/*.JPEG"))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    val = datasets.Dataset.from_dict(
        {"image": [str(p) for p in paths], "label": [index[p.parent.name] for p in paths]}, features=features
    )
    # One row from a class outside the task must be ignored.
    other = datasets.Dataset.from_dict({"image": [str(paths[0])], "label": [999]}, features=features)
    datasets.DatasetDict({"validation": datasets.concatenate_datasets([val, other])}).save_to_disk(tmp_path / "hf")
    task = load_task("breeds-living17")
    reference = task.load_split("test", fake_imagenet)
    hf = task.load_split("test", tmp_path / "hf")
    assert hf.manifest_digest == reference.manifest_digest
    np.testing.assert_allclose(hf.images.load(np.arange(3)).numpy(), reference.images.load(np.arange(3)).numpy())


def test_encoder_decoding_is_recorded(fake_imagenet):
    request = _request("breeds-living17", fake_imagenet, metrics=["clusterability"], image_preprocessing="encoder")
    result = evaluate(request)
    decoding = result["task"]["splits"]["test"]["decoding"]
    assert decoding["image_shape"] == [1, 8, 8] and decoding["resize"] == 8


def _cli(*args: str):
    return runner.invoke(app, ["evaluate", "--quiet", *args])


def test_missing_imagenet_is_a_one_line_error(tmp_path):
    result = _cli("--task", "breeds-living17", "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 2 and "train/<wnid>/*.JPEG" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r.json").exists()


def test_incomplete_or_corrupt_imagenet_is_a_one_line_error(fake_imagenet, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(fake_imagenet / "val", broken / "val")
    shutil.rmtree(broken / "val" / "n01631663")
    args = ["--task", "breeds-living17", "--data", str(broken), "--metrics", "clusterability"]
    result = _cli(*args, "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 2 and "lacks class folders" in result.output
    (broken / "val" / "n01631663").mkdir()
    shutil.copytree(fake_imagenet / "val" / "n01631663", broken / "val" / "n01631663", dirs_exist_ok=True)
    victim = sorted((broken / "val" / "n01631663").iterdir())[0]
    victim.write_bytes(b"not a jpeg")
    result = _cli(*args, "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 2 and "cannot decode image" in result.output and victim.name in result.output
    assert not (tmp_path / "r.json").exists()


def test_hub_file_names_map_to_imagenet_file_names():
    from subclassbench.tasks.imagenet import _file_id

    # The hub's imagenet-1k appends the WNID; ids must equal the class-folder layout's file names.
    assert _file_id("ILSVRC2012_val_00000001_n01751748.JPEG") == "ILSVRC2012_val_00000001.JPEG"
    assert _file_id("n01440764_10026_n01440764.JPEG") == "n01440764_10026.JPEG"
    assert _file_id("n01440764_10026.JPEG") == "n01440764_10026.JPEG"


def test_a_shuffled_control_reuses_its_natural_tasks_features(fake_imagenet, tmp_path):
    """The shuffled control regroups the same subclasses: the same images, so the same cached features."""
    cache = str(tmp_path / "cache")
    natural = evaluate(_request("breeds-living17", fake_imagenet, cache_dir=cache, bootstrap=0))
    control = evaluate(_request("breeds-living17-shuffled", fake_imagenet, cache_dir=cache, bootstrap=0))
    first, second = natural["run"]["feature_cache"], control["run"]["feature_cache"]
    assert first["hits"] == 0 and first["misses"] > 0
    assert second == {"mode": "use", "hits": first["misses"], "misses": 0}
    assert natural["task"]["fingerprint"] != control["task"]["fingerprint"]  # the tasks still differ


def test_the_images_fingerprint_follows_pixels_not_labels(fake_imagenet):
    natural = load_task("breeds-living17").load_split("test", fake_imagenet)
    control = load_task("breeds-living17-shuffled").load_split("test", fake_imagenet)
    assert natural.images_fingerprint == control.images_fingerprint and natural.fingerprint != control.fingerprint
    assert natural.subset(np.arange(4)).images_fingerprint != natural.images_fingerprint
    assert natural.subset(np.arange(4)[::-1]).images_fingerprint != natural.subset(np.arange(4)).images_fingerprint
    task = load_task("breeds-living17")
    task.data = {**task.data, "preprocessing": {**task.data["preprocessing"], "resize": 300}}
    assert task.load_split("test", fake_imagenet).images_fingerprint != natural.images_fingerprint


@pytest.fixture(scope="module")
def fake_tiny_imagenet(tmp_path_factory) -> Path:
    """train/<wnid>/*.JPEG and val/<wnid>/*.JPEG for breeds-tiny16's 64 classes, at Tiny ImageNet's 64 px."""
    root = tmp_path_factory.mktemp("tiny-imagenet")
    rng = np.random.RandomState(1)
    task = load_task("breeds-tiny16")
    for n, wnid in enumerate(sorted(c.id for s in task.superclasses for c in s.subclasses)):
        for split, count in (("train", 3), ("val", 2)):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                _jpeg(folder / f"{wnid}_{split}_{i}.JPEG", rng, n, size=(64, 64))
    return root


def _pooled_conv():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_upsampling_of_encoded_images_is_noted_with_the_crop(fake_tiny_imagenet):
    """Tiny ImageNet's 64-px photographs read by a 224-px encoder: the result says how far, and what was cut."""
    import subclassbench

    result = subclassbench.evaluate(
        _pooled_conv(), task="breeds-tiny16", data=str(fake_tiny_imagenet), metrics=["clusterability"],
        layers=["0", "1"],
        preprocess={"input_size": (3, 224, 224), "crop_pct": 0.875}, bootstrap=0, cache="off", progress=False,
    )  # fmt: skip
    assert (
        "images upsampled 4.0x, from 64x64 to 256x256, centre-cropped to the encoder's 224x224 input (crop_pct 0.875); "
        "numbers describe interpolated images"
    ) in result["notes"]
    same = subclassbench.evaluate(
        _pooled_conv(), task="breeds-tiny16", data=str(fake_tiny_imagenet), metrics=["clusterability"],
        layers=["0", "1"],
        preprocess={"input_size": (3, 64, 64)}, bootstrap=0, cache="off", progress=False,
    )  # fmt: skip
    assert not any("upsampled" in note for note in same["notes"])
