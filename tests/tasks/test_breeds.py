"""BREEDS (subclassbench.tasks.breeds): the task builder, the frozen task files, BREEDS over a class list
(Tiny ImageNet); the ImageNet source: test_imagenet.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
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


# --------------------------------------------------------------------------- hash-range splits


def test_overlapping_hash_ranges_are_rejected():
    raw = yaml.safe_load((REPO / "subclassbench" / "tasks" / "builtin" / "breeds-living17.yaml").read_text())
    raw["splits"]["val"]["select"]["hash_range"] = [0.0, 0.05]
    with pytest.raises(SubclassbenchError, match="share samples"):
        Task.from_dict(raw)


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
