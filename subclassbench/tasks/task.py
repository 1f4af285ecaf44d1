"""Tasks: a dataset, a superclass→subclass hierarchy, split manifests and a fingerprint.

Tasks are data, not code: one YAML file per task, shipped inside the package
(``subclassbench/tasks/builtin/``, like lm-eval's task YAML), in the folders
named by ``$SUBCLASSBENCH_TASKS``, or at any path passed to ``--task``. This module loads and validates
them, resolves a split into concrete samples through a data source, and
computes the task fingerprint:

* ``definition_fingerprint`` — sha256 of the fully resolved definition
  (hierarchy, data source, explicit split manifests). Needs no data.
* ``fingerprint`` — sha256 of the definition fingerprint plus the evaluation
  manifest digest: every evaluated sample's id, label and content hash. It
  equals ``definition_fingerprint`` until the data has been loaded, and
  distinguishes data variants (e.g. JPEG-degraded vs lossless CIFAR-10).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from subclassbench.core import safeyaml
from subclassbench.core.files import check_name, read_json
from subclassbench.core.hashing import sha256_json, sha256_text
from subclassbench.core.limits import MAX_CLASSES, MAX_SUBCLASSES_PER_SUPERCLASS
from subclassbench.errors import SubclassbenchError, closest
from subclassbench.schemas import first_error
from subclassbench.tasks import datasources

TASK_SUFFIXES = (".yaml", ".yml", ".json")


TASKS_ENV = "SUBCLASSBENCH_TASKS"


def builtin_tasks_dir() -> Path:
    """The task files shipped inside the package (package data, so they travel with a wheel)."""
    return Path(str(resources.files("subclassbench.tasks").joinpath("builtin")))


def task_dirs() -> list[Path]:
    """Where task names are looked up: the folders in ``$SUBCLASSBENCH_TASKS`` (``os.pathsep``-separated,
    searched first, so a user's folder can hold new tasks or a newer version of a shipped one), then the
    built-in tasks."""
    env = os.environ.get(TASKS_ENV, "")
    user = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [*user, builtin_tasks_dir()]


def list_tasks() -> list[str]:
    names: set[str] = set()
    for folder in task_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.iterdir() if p.suffix in TASK_SUFFIXES)
    return sorted(names)


# Keys of a task's data block that choose or name classes but never change a sample's pixels (see
# SplitData.images_fingerprint); a key not listed here is assumed to change them.
HIERARCHY_ONLY_DATA = frozenset({"breeds", "excludes", "same_classes_as", "class_names"})


@dataclass(frozen=True)
class Subclass:
    id: int | str
    name: str
    index: int | None = None  # the dataset's integer label when ids are names (ImageNet class index)


@dataclass(frozen=True)
class Superclass:
    id: int | str
    name: str
    subclasses: tuple[Subclass, ...]


@dataclass(frozen=True)
class OODSet:
    """An out-of-distribution set: another task's data whose classes the encoder was not trained on.

    Harun et al. (2024) fit a probe on each OOD set's own train split and score
    it on its test split; its classes are the providing task's subclasses.
    """

    name: str  # how results name the set
    task: str  # the registered task that provides the data
    train_split: str
    test_split: str


@dataclass(frozen=True)
class TransferSpec:
    """The transfer probes a task defines.

    * **ID**: a probe learns ``id_labels`` (superclass or subclass labels) on
      ``id_train_split`` (only the ``source`` subclasses when a subpopulation
      shift is defined) and is scored on ``id_test_split``.
    * **Subpopulation shift** (BREEDS-style, Santurkar et al. 2021), when
      ``target`` is set: the ID probe, unchanged, on the target subclasses of
      ``ood_split`` under the same superclass labels; ``refit: target_fine``
      adds a probe fit on the target subclasses' own labels (train →
      ``ood_split``). Same classes, new subpopulations: not out of distribution.
    * **OOD sets** (Harun et al. 2024): class-disjoint data from other tasks,
      each with its own probe.
    """

    id_train_split: str
    id_test_split: str
    ood_split: str | None = None  # the subpopulation-shift split (named before v2 of the protocol)
    source: tuple[Any, ...] = ()
    target: tuple[Any, ...] = ()
    refit: str = "target_fine"
    id_labels: str = "superclass"
    ood_sets: tuple[OODSet, ...] = ()

    @property
    def has_shift(self) -> bool:
        return bool(self.target)

    def definition(self) -> dict[str, Any]:
        """Fields as fingerprinted; v2 additions appear only when used, so older tasks keep their fingerprints."""
        out = dataclasses.asdict(self)
        if self.id_labels == "superclass":
            del out["id_labels"]
        if not self.ood_sets:
            del out["ood_sets"]
        return out


# Seed of --limit subsets: fixed, so two quick tries on one split see the same samples.
LIMIT_SEED = 0


def _apportion(counts: np.ndarray, n: int) -> np.ndarray:
    """How many of ``n`` rows each stratum keeps: its share of ``n``, at least ``min(count, 2)``.

    Strata whose share is below that floor keep the floor, and the others share what is left in proportion to
    their sizes (repeated: the smaller amount left can push another stratum under its floor); the shares are
    then rounded by Hamilton's largest-remainder method. Needs ``sum(min(counts, 2)) <= n <= sum(counts)``."""
    floor = np.minimum(counts, 2)
    if not int(floor.sum()) <= n <= int(counts.sum()):  # SplitData.limited refuses such an n before it gets here
        raise ValueError(f"cannot keep {n} rows of strata of {counts.tolist()} with at least min(count, 2) each")
    fixed = np.zeros(len(counts), dtype=bool)
    while True:
        budget = n - int(floor[fixed].sum())
        share = np.where(fixed, floor, counts * budget / counts[~fixed].sum())
        under = ~fixed & (share < floor)
        if not under.any():
            break
        fixed |= under  # the free strata's shares still sum to at least their floors, so some stay free
    quota: np.ndarray = np.where(fixed, floor, np.floor(share)).astype(np.int64)
    free = np.flatnonzero(~fixed)
    largest = free[np.argsort(-(share[free] - quota[free]), kind="stable")]
    quota[largest[: n - int(quota.sum())]] += 1
    return quota


@dataclass
class SplitData:
    """One split resolved to samples, with superclass and subclass labels.

    ``superclass[i]`` indexes ``task.superclasses``; ``subclass[i]`` indexes the
    subclasses *within* that superclass, so k-means scoring per superclass can
    use it directly.
    """

    task: Task
    split: str
    images: datasources.ImageSet
    superclass: np.ndarray
    subclass: np.ndarray
    source: str
    decoding: datasources.Decoding | None = None
    # False when a split has a canonical size (e.g. 50 ImageNet val images per class) and the data differs,
    # and for a --limit subset.
    canonical: bool | None = None
    limit: dict[str, int] | None = None  # {"n", "seed", "of"} when this is a --limit subset

    def limited(self, n: int, seed: int = LIMIT_SEED) -> SplitData:
        """A seeded subset of at most ``n`` samples, stratified by subclass: each subclass keeps its share
        (rounded, at least 2 samples), in manifest order. For quick tries; such results are never ranked."""
        strata = self.global_subclass
        values, counts = np.unique(strata, return_counts=True)
        floor = int(np.minimum(counts, 2).sum())
        if n < floor:
            raise SubclassbenchError(
                f"--limit {n} is too small for split '{self.split}' of task '{self.task.name}': it keeps at least "
                f"2 samples of each of its {len(values)} subclasses; use --limit {floor} or more"
            )
        if n >= len(self):
            keep = np.arange(len(self))
        else:
            rng = np.random.RandomState(seed)
            quota = _apportion(counts, n)
            keep = np.sort(np.concatenate([
                rng.permutation(np.flatnonzero(strata == v))[:q] for v, q in zip(values, quota, strict=True)
            ]))  # fmt: skip
        return dataclasses.replace(self.subset(keep), canonical=False, limit={"n": n, "seed": seed, "of": len(self)})

    def subset(self, rows: np.ndarray) -> SplitData:
        """These rows of the split, in the order given (their own manifest, so their own cache keys)."""
        return dataclasses.replace(
            self, images=self.images.subset(rows), superclass=self.superclass[rows], subclass=self.subclass[rows]
        )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def global_subclass(self) -> np.ndarray:
        """Each sample's subclass as one index over the whole hierarchy, in hierarchy order."""
        offsets = np.cumsum([0] + [len(s.subclasses) for s in self.task.superclasses])
        index: np.ndarray = offsets[self.superclass] + self.subclass
        return index

    @cached_property
    def manifest_digest(self) -> str:
        """sha256 over (id, label, content hash) of every sample, in order."""
        rows = zip(self.images.ids, self.images.labels.tolist(), self.images.content_hashes(), strict=False)
        return sha256_text("\n".join(f"{i}\t{label}\t{h}" for i, label, h in rows))

    @property
    def fingerprint(self) -> str:
        return sha256_text(self.task.definition_fingerprint + "\n" + self.manifest_digest)

    @cached_property
    def images_fingerprint(self) -> str:
        """What decides the pixels an encoder sees: the task's data block, less the keys that only choose or name
        classes, and each sample's id and content hash, in order.

        Labels and the hierarchy are left out, so two tasks over the same images share cached features: a
        shuffled control (Nguyen & Kornblith 2023) re-chunks its natural task's subclasses, and its images
        are the same files in the same order.
        """
        data = {key: value for key, value in self.task.data.items() if key not in HIERARCHY_ONLY_DATA}
        rows = zip(self.images.ids, self.images.content_hashes(), strict=False)
        return sha256_text(sha256_json(data) + "\n" + "\n".join(f"{i}\t{h}" for i, h in rows))

    def record(self) -> dict[str, Any]:
        """What a result stores about this split."""
        out: dict[str, Any] = {"n_samples": len(self), "manifest_sha256": self.manifest_digest}
        if self.canonical is not None:
            out["canonical"] = self.canonical
        if self.limit is not None:
            out["limit"] = dict(self.limit)
        if self.decoding is not None:
            out["decoding"] = self.decoding.to_dict()
        return out

    @property
    def note(self) -> str | None:
        if self.limit is not None:
            return (
                f"split '{self.split}' of {self.task.name}: --limit {self.limit['n']} kept {len(self)} of "
                f"{self.limit['of']} samples "
                "(seeded, stratified by subclass): a quick try, not comparable with full results and never ranked"
            )
        if self.canonical is False:
            expected = self.task.splits[self.split]["canonical_count"]
            return (
                f"split '{self.split}' of {self.task.name} has {len(self)} samples, not the canonical {expected}: "
                "scores are not comparable with results on the full data"
            )
        return None


@dataclass
class Task:
    name: str
    version: int
    description: str
    citation: str
    data: dict[str, Any]
    superclasses: tuple[Superclass, ...]
    splits: dict[str, dict[str, Any]]
    evaluation_split: str
    transfer: TransferSpec | None = None
    validation_split: str | None = None  # for choosing a layer (Brain-Score's commitment); never scored
    path: Path | None = field(default=None, compare=False)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> Task:
        where = str(path) if path else str(raw.get("name", "task")) if isinstance(raw, dict) else "task"
        _validate_schema(raw, where)
        supers = tuple(
            Superclass(
                id=s["id"],
                name=s["name"],
                subclasses=tuple(
                    Subclass(id=c["id"], name=c.get("name", str(c["id"])), index=c.get("index"))
                    for c in s["subclasses"]
                ),
            )
            for s in raw["hierarchy"]["superclasses"]
        )
        task = cls(
            name=raw["name"],
            version=int(raw["version"]),
            description=raw["description"].strip(),
            citation=raw["citation"].strip(),
            data=raw["data"],
            superclasses=supers,
            splits=raw["splits"],
            evaluation_split=raw.get("evaluation_split", "test"),
            validation_split=raw.get("validation_split"),
            transfer=_transfer_spec(raw.get("transfer")),
            path=path,
        )
        task._check_consistency(where)
        return task

    def _check_consistency(self, where: str) -> None:
        check_name(self.name, f"{where}: task name")
        for split in self.splits:
            check_name(split, f"{where}: split name")
        super_ids = [sup.id for sup in self.superclasses]
        if len(set(map(str, super_ids))) != len(super_ids):
            raise SubclassbenchError(f"{where}: two superclasses share an id; give every superclass its own id")
        total = sum(len(sup.subclasses) for sup in self.superclasses)
        if total > MAX_CLASSES:
            raise SubclassbenchError(
                f"{where}: the hierarchy has {total:,} subclasses, more than the {MAX_CLASSES:,} allowed "
                "(docs/limits.md); make a smaller task"
            )
        seen: set[Any] = set()
        for sup in self.superclasses:
            if len(sup.subclasses) < 2:
                raise SubclassbenchError(f"{where}: superclass '{sup.name}' needs at least 2 subclasses")
            if len(sup.subclasses) > MAX_SUBCLASSES_PER_SUPERCLASS:  # its k-means would run for hours
                raise SubclassbenchError(
                    f"{where}: superclass '{sup.name}' has {len(sup.subclasses):,} subclasses, more than the "
                    f"{MAX_SUBCLASSES_PER_SUPERCLASS:,} allowed (docs/limits.md); split it into several superclasses"
                )
            for sub in sup.subclasses:
                if sub.id in seen:
                    raise SubclassbenchError(f"{where}: subclass id {sub.id!r} appears in two superclasses")
                seen.add(sub.id)
        if self.evaluation_split not in self.splits:
            raise SubclassbenchError(
                f"{where}: evaluation_split '{self.evaluation_split}' is not among splits {list(self.splits)}"
            )
        names = sorted(self.splits)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if self._source_pool(a) == self._source_pool(b) and self._may_overlap(a, b):
                    raise SubclassbenchError(f"{where}: splits '{a}' and '{b}' share samples; splits must be disjoint")

        if self.validation_split is not None:
            if self.validation_split not in self.splits or self.validation_split == self.evaluation_split:
                raise SubclassbenchError(
                    f"{where}: validation_split '{self.validation_split}' must be a split other than the "
                    f"evaluation split, among {list(self.splits)}"
                )
        if self.transfer is not None:
            self._check_transfer(self.transfer, where)

    def _may_overlap(self, a: str, b: str) -> bool:
        """Whether two splits over the same source pool can share samples."""
        sa, sb = self.splits[a], self.splits[b]
        if "ids" in sa and "ids" in sb:
            return bool(set(map(str, sa["ids"])) & set(map(str, sb["ids"])))
        ra, rb = _hash_select(sa), _hash_select(sb)
        if ra and rb and ra["salt"] == rb["salt"]:
            (lo_a, hi_a), (lo_b, hi_b) = ra["hash_range"], rb["hash_range"]
            overlap: bool = lo_a < hi_b and lo_b < hi_a
            return overlap
        return True  # 'all' overlaps everything; ids vs. a hash range cannot be checked without data

    def _source_pool(self, split: str) -> str:
        """The set of samples a split's ids index: digits has one pool, other sources one per source split."""
        if self.source.single_pool:
            return "all"
        pool: str = self.splits[split].get("source_split", split)
        return pool

    def _check_transfer(self, spec: TransferSpec, where: str) -> None:
        splits = [spec.id_train_split, spec.id_test_split] + ([spec.ood_split] if spec.ood_split else [])
        for split in splits:
            if split not in self.splits:
                raise SubclassbenchError(f"{where}: transfer split '{split}' is not among splits {list(self.splits)}")
        if not spec.has_shift and not spec.ood_sets:
            raise SubclassbenchError(f"{where}: the transfer block needs source/target subclasses, ood_sets, or both")
        if spec.has_shift:
            self._check_shift(spec, where)
        names = [o.name for o in spec.ood_sets]
        if len(set(names)) != len(names):
            raise SubclassbenchError(f"{where}: two OOD sets share the name; give each its own")
        for ood in spec.ood_sets:
            check_name(ood.name, f"{where}: OOD set name")
            check_name(ood.task, f"{where}: OOD set task")
            if ood.train_split == ood.test_split:
                raise SubclassbenchError(f"{where}: OOD set '{ood.name}' must train and test on different splits")

    def _check_shift(self, spec: TransferSpec, where: str) -> None:
        if spec.ood_split is None or not spec.source:
            raise SubclassbenchError(f"{where}: a subpopulation shift needs ood_split, source and target")
        overlap = set(spec.source) & set(spec.target)
        if overlap:
            raise SubclassbenchError(f"{where}: transfer source and target share subclasses {sorted(overlap, key=str)}")
        for sup in self.superclasses:
            ids = {c.id for c in sup.subclasses}
            if not ids & set(spec.source) or not ids & set(spec.target):
                raise SubclassbenchError(
                    f"{where}: superclass '{sup.name}' needs at least one source and one target subclass for transfer"
                )
        unknown = [i for i in (*spec.source, *spec.target) if i not in self.label_to_position]
        if unknown:
            raise SubclassbenchError(f"{where}: transfer names subclasses outside the hierarchy: {unknown[:3]}")

    def class_keys(self) -> set[tuple[str, str]]:
        """(dataset, class) pairs this task's hierarchy covers, to tell whether two tasks share classes.

        Classes of other datasets declared the same (``data.same_classes_as``: another task's name → this
        task's class id → that task's class id, e.g. Tiny ImageNet's tabby cat as CIFAR-10's cat) count too,
        so an OOD set that holds them is known to overlap an encoder trained on the other dataset."""
        dataset = self.dataset_identity
        keys = {(dataset, str(sub.id)) for sup in self.superclasses for sub in sup.subclasses}
        own = {str(sub.id) for sup in self.superclasses for sub in sup.subclasses}
        for other_name, mapping in (self.data.get("same_classes_as") or {}).items():
            other = load_task(other_name, by_name_only=True)
            theirs = {str(sub.id) for sup in other.superclasses for sub in sup.subclasses}
            for mine, their in mapping.items():
                if str(mine) not in own or str(their) not in theirs:
                    raise SubclassbenchError(
                        f"task '{self.name}': data.same_classes_as maps {mine} to {other_name}'s {their}, but "
                        f"{mine if str(mine) not in own else their} is not a class of "
                        f"{self.name if str(mine) not in own else other_name}; fix the mapping"
                    )
                keys.add((other.dataset_identity, str(their)))
        return keys

    @property
    def dataset_identity(self) -> str:
        """Which dataset the labels index: the Hub path where one is named, else the data source and shape."""
        hub = self.data.get("hf_dataset", {}).get("path") if isinstance(self.data.get("hf_dataset"), dict) else None
        if hub:
            return f"hf:{hub}"
        return f"{self.data['source']}:{self.data.get('image_shape')}"

    # ----------------------------------------------------------------- hierarchy

    @cached_property
    def label_to_position(self) -> dict[Any, tuple[int, int]]:
        """Dataset label id → (superclass index, subclass index within it)."""
        return {sub.id: (s, k) for s, sup in enumerate(self.superclasses) for k, sub in enumerate(sup.subclasses)}

    @property
    def n_subclasses(self) -> int:
        return sum(len(s.subclasses) for s in self.superclasses)

    # ----------------------------------------------------------------- fingerprints

    def definition(self) -> dict[str, Any]:
        """The fully resolved definition that the fingerprint covers."""
        return {
            "name": self.name,
            "version": self.version,
            "data": self.data,
            "hierarchy": [
                {"id": s.id, "name": s.name, "subclasses": [_subclass_definition(c) for c in s.subclasses]}
                for s in self.superclasses
            ],
            "splits": self.splits,
            "evaluation_split": self.evaluation_split,
            **({"validation_split": self.validation_split} if self.validation_split else {}),
            "transfer": None if self.transfer is None else self.transfer.definition(),
        }

    @cached_property
    def definition_fingerprint(self) -> str:
        return sha256_json(self.definition())

    def summary(self, split_data: SplitData | None = None) -> dict[str, Any]:
        """The JSON that ``subclassbench tasks show NAME --json`` prints."""
        return {
            "name": self.name,
            "version": self.version,
            "fingerprint": split_data.fingerprint if split_data else self.definition_fingerprint,
            "definition_fingerprint": self.definition_fingerprint,
            "data_hashed": split_data is not None,
            "description": self.description,
            "splits": {k: _split_size(v) for k, v in self.splits.items()},
            "evaluation_split": self.evaluation_split,
            "validation_split": self.validation_split,
            "superclasses": [self._superclass_summary(s) for s in self.superclasses],
        }

    def _superclass_summary(self, sup: Superclass) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": sup.name,
            "id": sup.id,
            "subclasses": [c.id for c in sup.subclasses],
            "subclass_names": [c.name for c in sup.subclasses],
        }
        if self.transfer is not None:
            out["source"] = [c.id for c in sup.subclasses if c.id in self.transfer.source]
            out["target"] = [c.id for c in sup.subclasses if c.id in self.transfer.target]
        return out

    # ----------------------------------------------------------------- data

    @property
    def source(self) -> datasources.DataSource:
        return datasources.DATA_SOURCES.get(self.data["source"], f" in task '{self.name}'")

    @property
    def needs_data_path(self) -> bool:
        return self.source.needs_data_path

    def decoding(self) -> datasources.Decoding | None:
        """The task's own image decoding (ImageNet: shorter side 256, centre crop 224), if it has one."""
        pre = self.data.get("preprocessing")
        if pre is None:
            return None
        crop = int(pre["center_crop"])
        channels = int(self.data["image_shape"][0])
        return datasources.Decoding((channels, crop, crop), int(pre["resize"]), pre.get("interpolation", "bilinear"))

    def load_split(
        self,
        split: str | None = None,
        data_path: str | Path | None = None,
        primary: bool = True,
        decoding: datasources.Decoding | None = None,
    ) -> SplitData:
        """Resolve a split into samples whose labels lie in the hierarchy.

        ``primary`` marks the split being evaluated; a single-split ``data_path``
        serves only that one (see ``datasources.load_image_classification``).
        ``decoding`` overrides the task's image decoding (e.g. the encoder's own
        resize and crop); it changes pixels, never which samples are selected.
        """
        split = split or self.evaluation_split
        if split not in self.splits:
            raise SubclassbenchError(f"task '{self.name}' has no split '{split}'; choose one of {list(self.splits)}")
        spec = self.splits[split]
        source_split = spec.get("source_split", split)
        images, origin = self.source.load(self, source_split, data_path, primary, decoding)
        images = images.subset(self._select(images, spec, split))
        if len(set(images.ids)) != len(images.ids):
            duplicate = next(i for i, n in Counter(images.ids).items() if n > 1)
            raise SubclassbenchError(
                f"task '{self.name}' split '{split}': sample id {duplicate!r} occurs more than once; "
                "every sample needs a unique id (fix the data or the manifest)"
            )
        if len(images) == 0:
            raise SubclassbenchError(
                f"task '{self.name}' split '{split}' has no samples whose label is in the hierarchy; "
                "check that the hierarchy's subclass ids are the dataset's label ids"
            )
        positions = [self.label_to_position[label] for label in images.labels.tolist()]
        superclass = np.fromiter((p[0] for p in positions), dtype=np.int64, count=len(positions))
        subclass = np.fromiter((p[1] for p in positions), dtype=np.int64, count=len(positions))
        canonical = spec.get("canonical_count")
        data = SplitData(
            self,
            split,
            images,
            superclass,
            subclass,
            origin,
            decoding=getattr(images, "decoding", None),
            canonical=None if canonical is None else len(images) == canonical,
        )
        expected = spec.get("manifest_sha256")
        if expected and data.manifest_digest != expected:
            raise SubclassbenchError(
                f"data for task '{self.name}' split '{split}' does not match the task's manifest hash "
                f"(expected {expected[:12]}…, got {data.manifest_digest[:12]}…); use the data source the "
                "task names or update the task version"
            )
        return data

    def _select(self, images: datasources.ImageSet, spec: dict[str, Any], split: str) -> np.ndarray:
        in_hierarchy = np.fromiter(
            (label in self.label_to_position for label in images.labels.tolist()), dtype=bool, count=len(images)
        )
        if "ids" in spec:
            index_of = {i: n for n, i in enumerate(images.ids)}
            wanted = [str(i) for i in spec["ids"]]
            missing = [i for i in wanted if i not in index_of]
            if missing:
                raise SubclassbenchError(
                    f"task '{self.name}' split '{split}': {len(missing)} manifest ids are not in the data "
                    f"(first: {missing[0]}); the data does not match this task"
                )
            index = np.asarray([index_of[i] for i in wanted], dtype=np.int64)
            if not in_hierarchy[index].all():
                raise SubclassbenchError(f"task '{self.name}' split '{split}' lists samples outside the hierarchy")
            return index
        index = np.flatnonzero(in_hierarchy)
        selector = _hash_select(spec)
        if selector:
            lo, hi = selector["hash_range"]
            position = np.asarray([_hash_position(selector["salt"], images.ids[i]) for i in index])
            index = index[(position >= lo) & (position < hi)]
        expected = spec.get("expected_count")
        if expected is not None and len(index) != expected:
            raise SubclassbenchError(
                f"task '{self.name}' split '{split}': found {len(index)} samples, expected {expected}; "
                "the data is incomplete or is not this dataset"
            )
        return index


def _subclass_definition(sub: Subclass) -> dict[str, Any]:
    out: dict[str, Any] = {"id": sub.id, "name": sub.name}
    if sub.index is not None:
        out["index"] = sub.index
    return out


def _hash_select(spec: dict[str, Any]) -> dict[str, Any] | None:
    select = spec.get("select")
    return select if isinstance(select, dict) else None


def _hash_position(salt: str, sample_id: str) -> float:
    """A sample's fixed position in [0, 1): hash-range splits depend on ids only, not on order or layout."""
    return int(sha256_text(f"{salt}:{sample_id}")[:15], 16) / 16**15


def _transfer_spec(raw: dict[str, Any] | None) -> TransferSpec | None:
    if raw is None:
        return None
    return TransferSpec(
        id_train_split=raw["id_train_split"],
        id_test_split=raw["id_test_split"],
        ood_split=raw.get("ood_split"),
        source=tuple(raw.get("source", ())),
        target=tuple(raw.get("target", ())),
        refit=raw.get("refit", "target_fine"),
        id_labels=raw.get("id_labels", "superclass"),
        ood_sets=tuple(
            OODSet(
                name=o["name"],
                task=o.get("task", o["name"]),
                train_split=o.get("train_split", "train"),
                test_split=o.get("test_split", "test"),
            )
            for o in raw.get("ood_sets", ())
        ),
    )


def _split_size(spec: dict[str, Any]) -> int | None:
    if "ids" in spec:
        return len(spec["ids"])
    return spec.get("expected_count", spec.get("canonical_count"))


# --------------------------------------------------------------------------- loading


def _validate_schema(raw: Any, where: str) -> None:
    if not isinstance(raw, dict):
        raise SubclassbenchError(f"{where}: a task file must be a mapping of fields")
    problem = first_error(raw, "task")
    if problem:
        raise SubclassbenchError(f"{where}: invalid task file {problem}")


def read_task_file(path: Path) -> dict[str, Any]:
    """Parse a task file (JSON, or YAML without aliases and within the size limit)."""
    # Not checked here: Task.from_dict validates it (a mapping, against the task schema).
    doc: dict[str, Any]
    if path.suffix != ".json":
        doc = safeyaml.load_file(path)
        return doc
    try:
        doc = read_json(path, "task file", safeyaml.MAX_BYTES)
    except SubclassbenchError as exc:
        raise SubclassbenchError(f"cannot parse {str(exc).removeprefix('cannot read ')}") from None
    return doc



def load_task(name_or_path: str | Path, by_name_only: bool = False) -> Task:
    """Load a task by name (built-in or in ``$SUBCLASSBENCH_TASKS``), or any task file by path.

    ``by_name_only`` refuses paths: submissions and the leaderboard use registered tasks only.
    """
    candidate = Path(name_or_path)
    if not by_name_only and candidate.suffix in TASK_SUFFIXES and candidate.exists():
        return Task.from_dict(read_task_file(candidate), candidate)
    name = str(name_or_path)
    for path in (folder / f"{name}{suffix}" for folder in task_dirs() for suffix in TASK_SUFFIXES):
        if path.exists():
            task = Task.from_dict(read_task_file(path), path)
            if task.name != name:
                raise SubclassbenchError(f"{path}: its name field '{task.name}' must equal the file name '{name}'")
            return task
    raise SubclassbenchError(
        f"unknown task '{name}'; valid tasks: {closest(name, list_tasks())} (or pass a task file path)"
    )
