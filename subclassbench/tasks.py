"""Tasks: a dataset, a superclass→subclass hierarchy, split manifests and a fingerprint.

Tasks are data, not code: one YAML file per task in the top-level ``tasks/``
folder (or any path passed to ``--task``). This module loads and validates
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
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from subclassbench import datasources
from subclassbench.errors import SubclassbenchError, closest, first_line
from subclassbench.hashing import sha256_json, sha256_text
from subclassbench.schemas import first_error

TASK_SUFFIXES = (".yaml", ".yml", ".json")


def tasks_dir() -> Path:
    """The folder of shipped task files (``$SUBCLASSBENCH_TASKS`` overrides it)."""
    env = os.environ.get("SUBCLASSBENCH_TASKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "tasks"


def list_tasks() -> list[str]:
    folder = tasks_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in TASK_SUFFIXES)


@dataclass(frozen=True)
class Subclass:
    id: int | str
    name: str


@dataclass(frozen=True)
class Superclass:
    id: int | str
    name: str
    subclasses: tuple[Subclass, ...]


@dataclass(frozen=True)
class TransferSpec:
    """Which subclasses are in distribution (source) and which are held out (target).

    The in-distribution probe learns superclass labels on source subclasses of
    ``id_train_split`` and is scored on the source subclasses of ``id_test_split``
    and, unchanged, on the target subclasses of ``ood_split`` (subpopulation
    shift). ``refit: target_fine`` adds a probe fit on the target subclasses'
    own labels (train → ``ood_split``).
    """

    id_train_split: str
    id_test_split: str
    ood_split: str
    source: tuple[Any, ...]
    target: tuple[Any, ...]
    refit: str = "target_fine"


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

    def __len__(self) -> int:
        return len(self.images)

    @cached_property
    def manifest_digest(self) -> str:
        """sha256 over (id, label, content hash) of every sample, in order."""
        rows = zip(self.images.ids, self.images.labels.tolist(), self.images.content_hashes(), strict=False)
        return sha256_text("\n".join(f"{i}\t{label}\t{h}" for i, label, h in rows))

    @property
    def fingerprint(self) -> str:
        return sha256_text(self.task.definition_fingerprint + "\n" + self.manifest_digest)


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
    path: Path | None = field(default=None, compare=False)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> Task:
        where = str(path) if path else raw.get("name", "task")
        _validate_schema(raw, where)
        supers = tuple(
            Superclass(
                id=s["id"],
                name=s["name"],
                subclasses=tuple(Subclass(id=c["id"], name=c.get("name", str(c["id"]))) for c in s["subclasses"]),
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
            transfer=_transfer_spec(raw.get("transfer")),
            path=path,
        )
        task._check_consistency(where)
        return task

    def _check_consistency(self, where: str) -> None:
        seen: set[Any] = set()
        for sup in self.superclasses:
            if len(sup.subclasses) < 2:
                raise SubclassbenchError(f"{where}: superclass '{sup.name}' needs at least 2 subclasses")
            for sub in sup.subclasses:
                if sub.id in seen:
                    raise SubclassbenchError(f"{where}: subclass id {sub.id!r} appears in two superclasses")
                seen.add(sub.id)
        if self.evaluation_split not in self.splits:
            raise SubclassbenchError(
                f"{where}: evaluation_split '{self.evaluation_split}' is not among splits {list(self.splits)}"
            )
        explicit = {k: set(map(str, v["ids"])) for k, v in self.splits.items() if "ids" in v}
        names = sorted(explicit)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                same_source = self._source_pool(a) == self._source_pool(b)
                if same_source and explicit[a] & explicit[b]:
                    raise SubclassbenchError(f"{where}: splits '{a}' and '{b}' share ids; splits must be disjoint")

        if self.transfer is not None:
            self._check_transfer(self.transfer, where)

    def _source_pool(self, split: str) -> str:
        """The set of samples a split's ids index: digits has one pool, other sources one per source split."""
        if self.data["source"] == "sklearn_digits":
            return "all"
        return self.splits[split].get("source_split", split)

    def _check_transfer(self, spec: TransferSpec, where: str) -> None:
        for split in (spec.id_train_split, spec.id_test_split, spec.ood_split):
            if split not in self.splits:
                raise SubclassbenchError(f"{where}: transfer split '{split}' is not among splits {list(self.splits)}")
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
                {"id": s.id, "name": s.name, "subclasses": [{"id": c.id, "name": c.name} for c in s.subclasses]}
                for s in self.superclasses
            ],
            "splits": self.splits,
            "evaluation_split": self.evaluation_split,
            "transfer": None if self.transfer is None else dataclasses.asdict(self.transfer),
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
    def needs_data_path(self) -> bool:
        return self.data["source"] == "image_classification"

    def load_split(
        self, split: str | None = None, data_path: str | Path | None = None, primary: bool = True
    ) -> SplitData:
        """Resolve a split into samples whose labels lie in the hierarchy.

        ``primary`` marks the split being evaluated; a single-split ``data_path``
        serves only that one (see ``datasources.load_image_classification``).
        """
        split = split or self.evaluation_split
        if split not in self.splits:
            raise SubclassbenchError(f"task '{self.name}' has no split '{split}'; choose one of {list(self.splits)}")
        spec = self.splits[split]
        source_split = spec.get("source_split", split)
        kind = self.data["source"]
        if kind == "sklearn_digits":
            images = datasources.load_sklearn_digits()
            origin = "sklearn.datasets.load_digits"
        elif kind == "synthetic_hierarchy":
            images, membership = datasources.generate_synthetic_hierarchy(self.data["params"])
            images = images.subset(np.flatnonzero(membership == source_split))
            origin = "generated"
        elif kind == "image_classification":
            images = datasources.load_image_classification(self.name, self.data, source_split, data_path, primary)
            origin = str(data_path) if data_path else f"hf:{self.data['hf_dataset']['path']}"
        else:  # guarded by the schema; kept for readers adding a source
            raise SubclassbenchError(f"task '{self.name}': unknown data source '{kind}'")

        images = images.subset(self._select(images, spec, split))
        if len(images) == 0:
            raise SubclassbenchError(
                f"task '{self.name}' split '{split}' has no samples whose label is in the hierarchy; "
                "check that the hierarchy's subclass ids are the dataset's label ids"
            )
        positions = [self.label_to_position[label] for label in images.labels.tolist()]
        superclass = np.fromiter((p[0] for p in positions), dtype=np.int64, count=len(positions))
        subclass = np.fromiter((p[1] for p in positions), dtype=np.int64, count=len(positions))
        data = SplitData(self, split, images, superclass, subclass, origin)
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
        expected = spec.get("expected_count")
        if expected is not None and len(index) != expected:
            raise SubclassbenchError(
                f"task '{self.name}' split '{split}': found {len(index)} samples, expected {expected}; "
                "the data is incomplete or is not this dataset"
            )
        return index


def _transfer_spec(raw: dict[str, Any] | None) -> TransferSpec | None:
    if raw is None:
        return None
    return TransferSpec(
        id_train_split=raw["id_train_split"],
        id_test_split=raw["id_test_split"],
        ood_split=raw["ood_split"],
        source=tuple(raw["source"]),
        target=tuple(raw["target"]),
        refit=raw.get("refit", "target_fine"),
    )


def _split_size(spec: dict[str, Any]) -> int | None:
    return len(spec["ids"]) if "ids" in spec else spec.get("expected_count")


# --------------------------------------------------------------------------- loading


def _validate_schema(raw: Any, where: str) -> None:
    if not isinstance(raw, dict):
        raise SubclassbenchError(f"{where}: a task file must be a mapping of fields")
    problem = first_error(raw, "task")
    if problem:
        raise SubclassbenchError(f"{where}: invalid task file {problem}")


def read_task_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        first = first_line(exc)
        raise SubclassbenchError(f"cannot parse task file {path}: {first}") from None
    return raw


def load_task(name_or_path: str | Path) -> Task:
    """Load a shipped task by name, or any task file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix in TASK_SUFFIXES and candidate.exists():
        return Task.from_dict(read_task_file(candidate), candidate)
    name = str(name_or_path)
    for suffix in TASK_SUFFIXES:
        path = tasks_dir() / f"{name}{suffix}"
        if path.exists():
            task = Task.from_dict(read_task_file(path), path)
            if task.name != name:
                raise SubclassbenchError(f"{path}: its name field '{task.name}' must equal the file name '{name}'")
            return task
    raise SubclassbenchError(
        f"unknown task '{name}'; valid tasks: {closest(name, list_tasks())} (or pass a task file path)"
    )
