"""BREEDS: the task builder, the frozen task files, and the ImageNet data source on a fake ImageNet tree."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.pipeline import EvaluationRequest, evaluate
from subclassbench.results.result import validate_result
from subclassbench.tasks.breeds import PRESETS, Hierarchy, derive, shuffle_control
from subclassbench.tasks.task import Task, load_task
from tests.conftest import REPO, SHARED

runner = CliRunner()
HIERARCHY = SHARED / "breeds" / "hierarchy"
requires_hierarchy = pytest.mark.skipif(not HIERARCHY.is_dir(), reason="optional: ../shared/breeds not present")

# A small hierarchy with the shapes that matter: a made-up 'dummy' id, a
# single-child chain above a superclass, uneven child groups, an edge to a
# node with no dataset class (must be pruned), and classes outside the tree.
#
# root ─┬─ dummy9 ─── a ─┬─ g1 (c00 c01 c02)          level 1: dummy9, dummy10, n9
#       │                └─ g2 (c03)                    level 2: a, b, x
#       ├─ dummy10 ── b ─┬─ g3 (c04 c05)
#       │                ├─ g4 (c06 c07)
#       │                └─ c08
#       └─ n9 ── x ── (no dataset class below)
CLASSES = [f"c{i:02d}" for i in range(10)]  # c09 is in no edge
EDGES = [
    ("root", "dummy9"),
    ("dummy9", "a"),
    ("a", "g1"),
    ("a", "g2"),
    ("g1", "c00"),
    ("g1", "c01"),
    ("g1", "c02"),
    ("g2", "c03"),
    ("root", "dummy10"),
    ("dummy10", "b"),
    ("b", "g3"),
    ("b", "g4"),
    ("b", "c08"),
    ("g3", "c04"),
    ("g3", "c05"),
    ("g4", "c06"),
    ("g4", "c07"),
    ("root", "n9"),
    ("n9", "x"),
]


def write_hierarchy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_class_info.json").write_text(json.dumps([[i, w, f"class {w}"] for i, w in enumerate(CLASSES)]))
    (folder / "class_hierarchy.txt").write_text("".join(f"{p} {c}\n" for p, c in EDGES))
    names = {"root": "root", "dummy9": "nine", "dummy10": "ten", "a": "alpha", "b": "beta", "n9": "n9", "x": "x"}
    names.update({g: g for g in ("g1", "g2", "g3", "g4")})
    (folder / "node_names.txt").write_text("".join(f"{k}\t{v}\n" for k, v in names.items()))
    return folder


@pytest.fixture
def toy(tmp_path: Path) -> Hierarchy:
    return Hierarchy.from_dir(write_hierarchy(tmp_path / "hier"), root="root")


# --------------------------------------------------------------------------- hierarchy and derivation


def test_hierarchy_prunes_dead_branches_and_counts_levels(toy):
    assert "n9" not in toy.level and "x" not in toy.level  # no dataset class below
    assert toy.level["dummy9"] == 1 and toy.level["c00"] == 4 and toy.level["c08"] == 3
    assert toy.leaves("dummy10") == ["c04", "c05", "c06", "c07", "c08"]
    assert toy.leaves("c03") == ["c03"]
    assert "c09" not in toy.level
    # Plain string order: 'dummy10' sorts before 'dummy9'.
    assert toy.nodes_at_level(1) == ["dummy10", "dummy9"]
    assert toy.splitting_node("dummy9") == "a"


def test_rand_split_draws_from_one_generator_in_label_order(toy):
    task = derive(toy, level=1, n_subclasses=4, split="rand", seed=2)
    rng = np.random.RandomState(2)
    first = list(rng.choice(toy.leaves("dummy10"), 4, replace=False))
    second = list(rng.choice(toy.leaves("dummy9"), 4, replace=False))
    assert [s.wnid for s in task.superclasses] == ["dummy10", "dummy9"]
    assert list(task.superclasses[0].subclasses) == first and list(task.superclasses[1].subclasses) == second
    for sup in task.superclasses:
        assert sup.source == sup.subclasses[:2] and sup.target == sup.subclasses[2:]


def test_no_split_draws_the_same_subclasses(toy):
    rand = derive(toy, 1, 4, split="rand")
    none = derive(toy, 1, 4, split="none")
    for a, b in zip(rand.superclasses, none.superclasses, strict=True):
        assert a.subclasses == b.subclasses and b.source == () and b.target == ()


def test_candidates_need_enough_classes(toy):
    assert [s.wnid for s in derive(toy, 1, 5, split="none").superclasses] == ["dummy10"]
    with pytest.raises(SubclassbenchError, match="choose a shallower level"):
        derive(toy, 1, 8)


def test_good_split_spreads_groups_and_bad_split_keeps_them_together(toy):
    # Superclass 'b': groups g3 (c04 c05), g4 (c06 c07), c08, largest first.
    good = derive(toy, 2, 4, split="good").superclasses
    bad = derive(toy, 2, 4, split="bad").superclasses
    good_b = next(s for s in good if s.wnid == "b")
    bad_b = next(s for s in bad if s.wnid == "b")
    assert good_b.source == ("c04", "c06") and good_b.target == ("c05", "c07")
    assert bad_b.source == ("c04", "c05") and bad_b.target == ("c06", "c07")
    # 'a' (via the dummy9 chain): g1 (c00 c01 c02) then g2 (c03).
    bad_a = next(s for s in bad if s.wnid == "a")
    assert bad_a.source == ("c00", "c01") and bad_a.target == ("c03", "c02")  # spare c02 fills the gap
    for sup in (*good, *bad):
        assert len(sup.source) == len(sup.target) == 2 and not set(sup.source) & set(sup.target)


def test_shuffled_control_regroups_the_same_subclasses(toy):
    task = derive(toy, 2, 4)
    control = shuffle_control(task)
    pool = [w for s in task.superclasses for w in s.subclasses]
    expected = list(pool)
    np.random.RandomState(2).shuffle(expected)
    assert [w for s in control.superclasses for w in s.subclasses] == expected
    assert all(len(s.subclasses) == 4 for s in control.superclasses)
    assert control.shuffled and shuffle_control(task) == control


def test_bad_builder_input_is_a_clear_error(tmp_path, toy):
    with pytest.raises(SubclassbenchError, match="lacks the BREEDS hierarchy file"):
        Hierarchy.from_dir(tmp_path)
    with pytest.raises(SubclassbenchError, match="even number"):
        derive(toy, 1, 3)
    with pytest.raises(SubclassbenchError, match="unknown BREEDS split"):
        derive(toy, 1, 4, split="worst")
    with pytest.raises(SubclassbenchError, match="not in the hierarchy"):
        derive(toy, 1, 4, ancestor="n404")


def test_build_breeds_command_writes_a_loadable_task(tmp_path):
    hier = write_hierarchy(tmp_path / "hier")
    out = tmp_path / "toy.yaml"
    args = ["tasks", "build-breeds", "--hierarchy", str(hier), "--level", "2", "--subclasses", "2"]
    args += ["--root", "root", "--name", "toy", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    task = Task.from_dict(yaml.safe_load(out.read_text()))
    assert [s.id for s in task.superclasses] == ["a", "b"]
    assert task.transfer is not None and len(task.transfer.source) == 2
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
    printed = runner.invoke(app, [*args[:-2], "--out", "-"])
    assert printed.exit_code == 0 and printed.output == out.read_text()
    missing = runner.invoke(app, ["tasks", "build-breeds", "--hierarchy", str(tmp_path), "--preset", "living17"])
    assert missing.exit_code == 2 and "lacks the BREEDS hierarchy file" in missing.output


# --------------------------------------------------------------------------- the frozen task files

SIZES = {"living17": (17, 4), "entity30": (30, 8), "entity13": (13, 20), "nonliving26": (26, 4)}


@pytest.mark.parametrize("preset", sorted(SIZES))
def test_shipped_breeds_tasks_have_the_published_sizes(preset):
    n_super, n_sub = SIZES[preset]
    task = load_task(f"breeds-{preset}")
    control = load_task(f"breeds-{preset}-shuffled")
    assert len(task.superclasses) == n_super and {len(s.subclasses) for s in task.superclasses} == {n_sub}
    assert task.transfer is not None
    assert len(task.transfer.source) == len(task.transfer.target) == n_super * n_sub // 2
    assert task.splits["test"]["canonical_count"] == 50 * n_super * n_sub
    pool = sorted(c.id for s in task.superclasses for c in s.subclasses)
    assert sorted(c.id for s in control.superclasses for c in s.subclasses) == pool
    assert all(c.index is not None for s in task.superclasses for c in s.subclasses)
    assert task.data["breeds"] == {**task.data["breeds"], "level": PRESETS[preset].level, "seed": 2}


def test_living17_show_json_lists_source_and_target():
    result = runner.invoke(app, ["tasks", "show", "breeds-living17", "--json"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)["superclasses"][0]
    assert first["name"] == "salamander" and first["id"] == "n01629276"
    assert first["source"] == ["n01631663", "n01632777"] and first["target"] == ["n01630670", "n01632458"]
    assert first["subclasses"] == first["source"] + first["target"]


@pytest.mark.shared
@requires_hierarchy
@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("shuffled", [False, True])
def test_frozen_files_equal_a_fresh_derivation(preset, shuffled, tmp_path):
    name = f"breeds-{preset}" + ("-shuffled" if shuffled else "")
    args = ["tasks", "build-breeds", "--hierarchy", str(HIERARCHY), "--preset", preset, "--out", "-"]
    result = runner.invoke(app, args + (["--shuffled"] if shuffled else []))
    assert result.exit_code == 0, result.output
    assert result.output == (REPO / "subclassbench" / "tasks" / "builtin" / f"{name}.yaml").read_text()


# --------------------------------------------------------------------------- ImageNet on a fake tree

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


def test_overlapping_hash_ranges_are_rejected():
    raw = yaml.safe_load((REPO / "subclassbench" / "tasks" / "builtin" / "breeds-living17.yaml").read_text())
    raw["splits"]["val"]["select"]["hash_range"] = [0.0, 0.05]
    with pytest.raises(SubclassbenchError, match="share samples"):
        Task.from_dict(raw)


def test_hub_file_names_map_to_imagenet_file_names():
    from subclassbench.tasks.imagenet import _file_id

    # The hub's imagenet-1k appends the WNID; ids must equal the class-folder layout's file names.
    assert _file_id("ILSVRC2012_val_00000001_n01751748.JPEG") == "ILSVRC2012_val_00000001.JPEG"
    assert _file_id("n01440764_10026_n01440764.JPEG") == "n01440764_10026.JPEG"
    assert _file_id("n01440764_10026.JPEG") == "n01440764_10026.JPEG"


# --------------------------------------------------------------------------- BREEDS over a class list (Tiny ImageNet)


def test_a_class_list_restricts_the_candidates(tmp_path):
    hier = write_hierarchy(tmp_path / "hier")
    listed = tmp_path / "wnids.txt"
    listed.write_text("c00\nc01\nc04\nc05\nc06\n")
    out = tmp_path / "small.yaml"
    args = ["tasks", "build-breeds", "--hierarchy", str(hier), "--level", "2", "--subclasses", "2", "--root", "root"]
    args += ["--classes", str(listed), "--image-size", "64", "--val-fraction", "0.2", "--name", "small"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    raw = yaml.safe_load(out.read_text())
    task = Task.from_dict(raw)
    drawn = {c.id for s in task.superclasses for c in s.subclasses}
    assert drawn <= {"c00", "c01", "c04", "c05", "c06"}  # never a class outside the list
    assert raw["data"]["image_shape"] == [3, 64, 64] and "hf_dataset" not in raw["data"]
    assert raw["data"]["preprocessing"] == {"resize": 64, "center_crop": 64, "interpolation": "bilinear"}
    assert raw["data"]["breeds"]["classes"]["count"] == 5
    assert raw["splits"]["val"]["select"]["hash_range"] == [0.0, 0.2]
    assert "--classes wnids.txt --image-size 64 --val-fraction 0.2 --name small" in out.read_text().splitlines()[0]
    assert [s.id for s in task.superclasses] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("c00\nzz99\n", "class zz99 of the class list is not a class of the BREEDS hierarchy"),
        ("", "is empty"),
        ("n12345678\n", "not a class of the BREEDS hierarchy"),
    ],
)
def test_a_bad_class_list_is_one_line(tmp_path, content, message):
    hier = write_hierarchy(tmp_path / "hier")
    listed = tmp_path / "wnids.txt"
    listed.write_text(content)
    args = ["tasks", "build-breeds", "--hierarchy", str(hier), "--level", "2", "--subclasses", "2", "--root", "root"]
    result = runner.invoke(app, [*args, "--classes", str(listed), "--name", "x", "--out", "-"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert __import__("re").search(message, lines[0]), lines[0]


def test_tiny_breeds_tasks_are_balanced_and_their_control_regroups_them():
    task, control = load_task("breeds-tiny16"), load_task("breeds-tiny16-shuffled")
    assert len(task.superclasses) == 16 and {len(s.subclasses) for s in task.superclasses} == {4}
    assert task.data["image_shape"] == [3, 64, 64]
    assert task.splits["test"]["canonical_count"] == 16 * 4 * 50
    pool = sorted(c.id for s in task.superclasses for c in s.subclasses)
    assert sorted(c.id for s in control.superclasses for c in s.subclasses) == pool
    natural = {frozenset(c.id for c in s.subclasses) for s in task.superclasses}
    assert not natural & {frozenset(c.id for c in s.subclasses) for s in control.superclasses}


@pytest.mark.shared
@requires_hierarchy
def test_tiny_imagenet_task_files_equal_a_fresh_derivation():
    import subprocess
    import sys

    script = REPO / "scripts" / "make_tiny_imagenet_tasks.py"
    done = subprocess.run([sys.executable, str(script), "--shared", str(SHARED), "--check"], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_tiny_imagenet_ood_set_is_the_rest_of_the_200_classes():
    task, ood = load_task("breeds-tiny16"), load_task("tiny-imagenet-ood16")
    inside = {c.id for s in task.superclasses for c in s.subclasses}
    outside = {c.id for s in ood.superclasses for c in s.subclasses}
    assert len(outside) == 136 and not inside & outside
    assert task.transfer is not None and [o.task for o in task.transfer.ood_sets] == ["tiny-imagenet-ood16"]
    assert ood.splits["test"]["canonical_count"] == 136 * 50


def test_cross_dataset_class_overlaps_are_declared_and_checked(tmp_path):
    ood, cifar = load_task("tiny-imagenet-ood16"), load_task("cifar10-5")
    shared = {label for _, label in ood.class_keys() & cifar.class_keys()}
    # Tiny ImageNet's cats, dogs, frogs, cars and a tractor are CIFAR-10 classes 3, 5, 6, 1 and 9.
    assert shared == {"1", "3", "5", "6", "9"}
    assert not load_task("breeds-tiny16").class_keys() & ood.class_keys()  # still disjoint from its own task
    raw = yaml.safe_load((REPO / "subclassbench" / "tasks" / "builtin" / "tiny-imagenet-ood16.yaml").read_text())
    raw["data"]["same_classes_as"] = {"cifar10-5": {"n01443537": 42}}
    with pytest.raises(SubclassbenchError, match="42 is not a class of cifar10-5; fix the mapping"):
        Task.from_dict(raw).class_keys()
