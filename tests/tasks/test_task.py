"""Task files (subclassbench.tasks.task): loading, validation, manifests, fingerprints, --limit subsets,
transfer blocks, class overlaps across datasets, and fuzzed task files."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from subclassbench.errors import SubclassbenchError
from subclassbench.tasks.task import SplitData, Task, builtin_tasks_dir, list_tasks, load_task, read_task_file
from tests.conftest import REPO
from tests.fuzzing import FUZZ, mutated, paths, reads_or_fails_cleanly, values

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


# --------------------------------------------------------------------------- class overlaps across datasets


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


# --------------------------------------------------------------------------- --limit subsets


def test_limit_is_a_seeded_stratified_subset(digits_train):
    part = digits_train.limited(100)
    assert len(part) == 100 and part.limit == {"n": 100, "seed": 0, "of": len(digits_train)}
    assert part.canonical is False and part.record()["limit"]["n"] == 100
    counts = np.bincount(part.global_subclass, minlength=10)
    full = np.bincount(digits_train.global_subclass, minlength=10)
    assert (counts >= 2).all() and np.abs(counts - full * 100 / len(digits_train)).max() <= 1.0  # each its share
    assert part.images.ids == digits_train.limited(100).images.ids  # seeded: the same try twice
    position = {sample: i for i, sample in enumerate(digits_train.images.ids)}
    assert [position[i] for i in part.images.ids] == sorted(position[i] for i in part.images.ids)  # manifest order
    assert part.fingerprint != digits_train.fingerprint  # features of the subset never pass for the full split's
    assert len(digits_train.limited(10**6)) == len(digits_train)  # a limit above the size keeps everything
    with pytest.raises(SubclassbenchError, match="use --limit 20 or more"):
        digits_train.limited(19)


def _with_counts(split: SplitData, counts: list[int]) -> SplitData:
    """The first ``counts[v]`` samples of each global subclass ``v`` of ``split``."""
    strata = split.global_subclass
    return split.subset(np.sort(np.concatenate([np.flatnonzero(strata == v)[:c] for v, c in enumerate(counts)])))


def test_limit_never_exceeds_n_when_floors_bind(digits_train):
    """Nine subclasses of 3 samples and one of ~170: their floors of 2 would keep 18 + a share of the big
    one; the subset still holds exactly n samples, at least 2 of each subclass."""
    big = int(np.bincount(digits_train.global_subclass).argmax())
    skewed = _with_counts(digits_train, [10**6 if v == big else 3 for v in range(10)])
    for n in (20, 25, 30, 60):
        part = skewed.limited(n)
        counts = np.bincount(part.global_subclass, minlength=10)
        assert len(part) == n and (counts >= 2).all(), (n, counts)


@pytest.mark.parametrize(
    ("counts", "n", "expected"),
    [
        # The 9-sample subclass's share of 50 is 1.56, under its floor: it keeps 2 and the other 48 rows are
        # shared by size (17.14, 5.14, 5.14, 4.29, 4.29, 3.43, 3.43, 2.57, 2.57: 45 by their integer parts); the
        # 3 left go to the largest remainders, the two 15s (.57) and the first 20 (.43). The floored subclass gets
        # none: rounding 1.56 up to 3 would give it almost twice its share.
        ([100, 30, 30, 25, 25, 20, 20, 15, 15, 9], 50, [17, 5, 5, 4, 4, 4, 3, 3, 3, 2]),
        # Eight subclasses of 3 keep their floors (16 rows); the 14 left are shared 40 : 61, 5.54 and 8.46.
        ([3, 3, 3, 3, 3, 3, 3, 40, 61, 3], 30, [2, 2, 2, 2, 2, 2, 2, 6, 8, 2]),
        # Every share exactly 2, then 2.1: one row left, to the first subclass.
        ([3] * 10, 20, [2] * 10),
        ([3] * 10, 21, [3] + [2] * 9),
    ],
)
def test_a_limit_keeps_floors_and_shares_the_rest_by_size(digits_train, counts, expected, n):
    split = _with_counts(digits_train, counts)
    assert np.bincount(split.global_subclass).tolist() == counts
    part = split.limited(n)
    assert len(part) == n and np.bincount(part.global_subclass, minlength=10).tolist() == expected


def test_quotas_outside_their_bounds_are_refused():
    from subclassbench.tasks.task import _apportion

    for n in (5, 10):  # three strata of 3 keep 6 to 9 rows
        with pytest.raises(ValueError, match=f"cannot keep {n} rows of strata of \\[3, 3, 3\\]"):
            _apportion(np.asarray([3, 3, 3]), n)
    assert _apportion(np.asarray([3, 3, 3]), 6).tolist() == [2, 2, 2]
    assert _apportion(np.asarray([3, 3, 3]), 9).tolist() == [3, 3, 3]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 100), min_size=10, max_size=10), st.floats(0.0, 1.0))
def test_a_limit_is_exact_floored_and_monotone_in_subclass_size(digits_train, counts, where):
    split = _with_counts(digits_train, counts)
    floors = [min(c, 2) for c in counts]
    n = sum(floors) + round(where * (len(split) - 1 - sum(floors)))
    if n < sum(floors):
        return  # every subclass below two samples: no subset to take
    kept = np.bincount(split.limited(n).global_subclass, minlength=10).tolist()
    assert sum(kept) == n
    for c, f, q in zip(counts, floors, kept, strict=True):
        assert f <= q <= c
        assert q <= max(f, int(np.ceil(c * n / len(split))))  # never above its share, unless floored
    for i, j in itertools.product(range(10), repeat=2):
        assert counts[i] <= counts[j] or kept[i] >= kept[j]  # a larger subclass never keeps fewer
        assert counts[i] != counts[j] or abs(kept[i] - kept[j]) <= 1  # equal ones differ by a tie's row at most


def test_a_limit_hands_the_rows_left_by_rounding_to_the_largest_remainders():
    split = load_task("digits-5").load_split("test")
    n = 97
    values, counts = np.unique(split.global_subclass, return_counts=True)
    share = counts * n / len(split)
    quota = np.floor(share).astype(int)  # Hamilton's method, computed here: floors, then the largest remainders
    for i in np.argsort(-(share - quota), kind="stable")[: n - quota.sum()]:
        quota[i] += 1
    limited = split.limited(n)
    got = dict(zip(*np.unique(limited.global_subclass, return_counts=True), strict=True))
    assert len(limited) == n and [got[v] for v in values] == quota.tolist()


# --------------------------------------------------------------------------- transfer blocks


def test_shipped_transfer_splits():
    semantic = load_task("cifar10-5-semantic").transfer
    assert semantic.source == (0, 2, 4, 6, 8) and semantic.target == (1, 3, 5, 7, 9)
    digits = load_task("digits-5").transfer
    assert digits.source == (0, 1, 2, 3, 4) and digits.id_train_split == "train"
    synthetic = load_task("synthetic-hier").transfer
    assert len(synthetic.source) == 4 and len(synthetic.target) == 8


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


# --------------------------------------------------------------------------- fuzzed task files


TASK = yaml.safe_load((builtin_tasks_dir() / "digits-5.yaml").read_text())
TASK_PATHS = paths(TASK)


@FUZZ
@given(st.sampled_from(TASK_PATHS), values, st.booleans())
def test_fuzzed_task_files(where, value, delete):
    raw = mutated(TASK, where, value, delete)

    def load() -> None:
        task = Task.from_dict(raw)
        json.dumps(task.summary())

    reads_or_fails_cleanly(load)


def test_hash_selected_splits_are_pinned_by_salt_and_id():
    """A hash-range split (cifar10-5's val: 10% of CIFAR train) keeps a sample when sha256("<salt>:<id>")'s first
    15 hex digits, read as a fraction of 16**15, fall in the range: computed here with hashlib, not the code."""
    import hashlib

    from subclassbench.tasks.datasources import ArrayImageSet
    from subclassbench.tasks.task import _hash_position

    def position(salt: str, sample_id: str) -> float:
        return int(hashlib.sha256(f"{salt}:{sample_id}".encode()).hexdigest()[:15], 16) / 16**15

    salt = "subclassbench-cifar10-val-v1"
    assert _hash_position(salt, "train/00042.png") == position(salt, "train/00042.png")
    task = load_task("cifar10-5")
    ids = [f"train/{i:05d}.png" for i in range(400)]
    images = ArrayImageSet(np.zeros((400, 2, 2, 3), np.uint8), np.arange(400) % 10, ids)
    val_spec = task.splits["val"]
    assert val_spec["select"] == {"hash_range": [0.0, 0.1], "salt": salt}  # the shipped task's selection
    chosen = task._select(images, val_spec, "val")
    assert chosen.tolist() == [i for i, s in enumerate(ids) if position(salt, s) < 0.1]
    assert 20 <= len(chosen) <= 60  # about a tenth of 400
    # The same range under another salt selects other samples: the salt is part of the split's definition.
    other = task._select(images, {**val_spec, "select": {"hash_range": [0.0, 0.1], "salt": salt + "x"}}, "val")
    assert set(other.tolist()) != set(chosen.tolist())
    # train and val partition the source split.
    train = task._select(images, task.splits["train"], "train")
    assert sorted([*chosen.tolist(), *train.tolist()]) == list(range(400))


# --------------------------------------------------------------------------- definitions, defaults and messages


def test_the_digits_definition_fingerprint_is_pinned():
    # Every digits-5 result records this fingerprint (task.definition_fingerprint): a change to what the definition
    # holds or how its keys are spelt makes every such result stale, so it is pinned here.
    task = load_task("digits-5")
    assert task.definition_fingerprint == "47fd62cd318e41c23d31ac2134ad2398dd1d92fa00e3f29e20606618faf41d9a"
    definition = task.definition()
    assert definition["name"] == "digits-5"
    names = ["zero/five", "one/six", "two/seven", "three/eight", "four/nine"]
    assert [s["name"] for s in definition["hierarchy"]] == names


def test_an_ood_set_takes_its_name_as_task_and_train_and_test_as_splits():
    raw = read_task_file(builtin_tasks_dir() / "digits-id5.yaml")
    raw["transfer"]["ood_sets"] = [{"name": "digits-ood5"}]
    (ood,) = Task.from_dict(raw).transfer.ood_sets
    assert (ood.name, ood.task, ood.train_split, ood.test_split) == ("digits-ood5", "digits-ood5", "train", "test")


def test_an_ood_set_task_that_is_no_name_is_refused_and_named():
    raw = read_task_file(builtin_tasks_dir() / "digits-id5.yaml")
    raw["transfer"]["ood_sets"] = [{"name": "digits-ood5", "task": "../digits-ood5"}]
    with pytest.raises(SubclassbenchError) as raised:
        Task.from_dict(raw)
    assert str(raised.value).startswith("invalid digits-id5: OOD set task '../digits-ood5'; use lower-case letters")


def test_a_task_without_a_path_is_named_by_its_name_in_errors():
    raw = read_task_file(builtin_tasks_dir() / "digits-5.yaml")
    raw["hierarchy"]["superclasses"][1]["id"] = raw["hierarchy"]["superclasses"][0]["id"]
    with pytest.raises(SubclassbenchError) as raised:
        Task.from_dict(raw)
    assert str(raised.value) == "digits-5: two superclasses share an id; give every superclass its own id"


def test_only_a_task_with_preprocessing_has_its_own_decoding():
    assert load_task("digits-5").decoding() is None
    decoding = load_task("breeds-entity13").decoding()
    assert decoding is not None and (decoding.image_shape, decoding.resize) == ((3, 224, 224), 256)
