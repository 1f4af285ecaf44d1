"""Derive BREEDS tasks from the BREEDS hierarchy files, and write them as frozen task files.

BREEDS (Santurkar, Tsipras & Madry, ICLR 2021) groups ImageNet classes into
superclasses at one level of a rebalanced WordNet tree. A task is fixed by:
the superclass level, an ancestor whose subtree holds the candidates, N
subclasses per superclass, a split rule (``rand`` / ``good`` / ``bad`` /
``none``) and a seed (2 for every published task).

This module re-implements that derivation from the three data files
(``dataset_class_info.json``, ``class_hierarchy.txt``, ``node_names.txt``)
so users can build BREEDS-style tasks from their own hierarchy, and adds the
*shuffled* control of Nguyen & Kornblith (2023): the same subclasses regrouped
into superclasses of unrelated subclasses. The shipped task files are written
once by ``subclassbench tasks build-breeds`` and never re-derived at run time.
"""

from __future__ import annotations

import json
import textwrap
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from subclassbench.core.hashing import sha256_bytes, sha256_file
from subclassbench.errors import SubclassbenchError, first_line

HIERARCHY_FILES = ("dataset_class_info.json", "class_hierarchy.txt", "node_names.txt")
ROOT = "n00001740"  # WordNet "entity"
SPLITS = ("rand", "good", "bad", "none")


@dataclass(frozen=True)
class Preset:
    level: int
    ancestor: str | None
    subclasses: int


# Parameters of the four published tasks (robustness.tools.breeds_helpers.make_*).
PRESETS: dict[str, Preset] = {
    "entity13": Preset(level=3, ancestor=None, subclasses=20),
    "entity30": Preset(level=4, ancestor=None, subclasses=8),
    "living17": Preset(level=5, ancestor="n00004258", subclasses=4),
    "nonliving26": Preset(level=5, ancestor="n00021939", subclasses=4),
}


class Hierarchy:
    """The class tree, pruned to nodes above at least one dataset class."""

    def __init__(
        self,
        classes: list[tuple[int, str, str]],
        edges: list[tuple[str, str]],
        names: dict[str, str],
        root: str = ROOT,
    ) -> None:
        self.class_index = {wnid: index for index, wnid, _ in classes}
        self.class_names = {wnid: name for _, wnid, name in classes}
        self.node_names = names
        self.root = root
        children: dict[str, set[str]] = {}
        for parent, child in edges:
            children.setdefault(parent, set()).add(child)
        parents: dict[str, set[str]] = {}
        for parent, kids in children.items():
            for child in kids:
                parents.setdefault(child, set()).add(parent)
        # Keep only edges on a path up from some dataset class (walk upwards from the leaves).
        kept: dict[str, set[str]] = {}
        frontier = [w for w in self.class_index if w in parents]
        seen: set[str] = set()
        while frontier:
            node = frontier.pop()
            for parent in parents.get(node, ()):
                kept.setdefault(parent, set()).add(node)
                if parent not in seen:
                    seen.add(parent)
                    frontier.append(parent)
        self.children = {node: sorted(kids) for node, kids in kept.items()}
        _check_acyclic(self.children)
        self.level = self._levels()

    @classmethod
    def from_dir(cls, folder: str | Path, root: str = ROOT, only: set[str] | None = None) -> Hierarchy:
        """The hierarchy's files; ``only`` restricts the dataset classes (and so every candidate) to a list."""
        folder = Path(folder)
        missing = [f for f in HIERARCHY_FILES if not (folder / f).is_file()]
        if missing:
            raise SubclassbenchError(
                f"{folder} lacks the BREEDS hierarchy file(s) {', '.join(missing)}; point --hierarchy at the folder "
                "holding dataset_class_info.json, class_hierarchy.txt and node_names.txt"
            )
        try:
            classes = [(int(i), str(w), str(n)) for i, w, n in json.loads((folder / HIERARCHY_FILES[0]).read_text())]
            lines = (folder / HIERARCHY_FILES[1]).read_text().splitlines()
            edges = [_pair(line, " ") for line in lines if line.strip()]
            names = dict(
                _pair(line, "\t") for line in (folder / HIERARCHY_FILES[2]).read_text().splitlines() if line.strip()
            )
        except (ValueError, TypeError, RecursionError, OSError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else first_line(exc, 100)
            raise SubclassbenchError(f"cannot parse the BREEDS hierarchy files in {folder}: {reason}") from None
        if only is not None:
            unknown = sorted(only - {w for _, w, _ in classes})
            if unknown:
                raise SubclassbenchError(
                    f"class {unknown[0]} of the class list is not a class of the BREEDS hierarchy in {folder}; "
                    "list ImageNet WNIDs, one per line"
                )
            classes = [c for c in classes if c[1] in only]
        return cls(classes, edges, names, root)

    def _levels(self) -> dict[str, int]:
        # Longest path from the root, as BREEDS counts it (equal to depth in a tree).
        level: dict[str, int] = {}
        queue = deque([(self.root, 0)])
        while queue:
            node, depth = queue.popleft()
            if level.get(node, -1) >= depth:
                continue
            level[node] = depth
            queue.extend((child, depth + 1) for child in self.children.get(node, ()))
        return level

    def name(self, node: str) -> str:
        return self.node_names.get(node) or self.class_names.get(node, node)

    def leaves(self, node: str) -> list[str]:
        """Dataset classes at or below ``node``, sorted; never descends past a dataset class."""
        if node in self.class_index:
            return [node]
        found: set[str] = set()
        stack = list(self.children.get(node, ()))
        while stack:
            child = stack.pop()
            if child in self.class_index:
                found.add(child)
            else:
                stack.extend(self.children.get(child, ()))
        return sorted(found)

    def subtree(self, ancestor: str) -> set[str]:
        nodes, stack = set(), [ancestor]
        while stack:
            node = stack.pop()
            if node not in nodes:
                nodes.add(node)
                stack.extend(self.children.get(node, ()))
        return nodes

    def nodes_at_level(self, level: int, ancestor: str | None = None) -> list[str]:
        """Sorted as plain strings, so made-up ``dummyNN`` ids precede WordNet ``n…`` ids."""
        if ancestor is not None and ancestor not in self.level:
            raise SubclassbenchError(f"ancestor '{ancestor}' is not in the hierarchy; pass a node id from it")
        allowed = self.subtree(ancestor) if ancestor else None
        return sorted(n for n, d in self.level.items() if d == level and (allowed is None or n in allowed))

    def splitting_node(self, superclass: str) -> str:
        """The superclass, or the first descendant with more than one child."""
        node = superclass
        while len(self.children.get(node, ())) == 1:
            node = self.children[node][0]
        return node


@dataclass(frozen=True)
class BreedsSuperclass:
    wnid: str
    name: str
    subclasses: tuple[str, ...]  # in drawn order; source first for split tasks
    source: tuple[str, ...]
    target: tuple[str, ...]


@dataclass(frozen=True)
class BreedsTask:
    level: int
    ancestor: str | None
    n_subclasses: int
    split: str
    seed: int
    superclasses: tuple[BreedsSuperclass, ...]
    shuffled: bool = False


def derive(
    hierarchy: Hierarchy,
    level: int,
    n_subclasses: int,
    ancestor: str | None = None,
    split: str = "rand",
    seed: int = 2,
) -> BreedsTask:
    """The BREEDS derivation: candidates at ``level``, N subclasses each, split by ``split``."""
    if split not in SPLITS:
        raise SubclassbenchError(f"unknown BREEDS split '{split}'; choose one of {', '.join(SPLITS)}")
    if n_subclasses < 2 or (split != "none" and n_subclasses % 2):
        raise SubclassbenchError(f"--subclasses must be an even number ≥ 2 for a split task (got {n_subclasses})")
    candidates = [n for n in hierarchy.nodes_at_level(level, ancestor) if len(hierarchy.leaves(n)) >= n_subclasses]
    if not candidates:
        raise SubclassbenchError(
            f"no node at level {level} has {n_subclasses} classes below it; "
            "choose a shallower level or fewer subclasses"
        )
    rng = np.random.RandomState(seed)  # one generator for the whole task, consumed superclass by superclass
    half = n_subclasses // 2
    supers = []
    for wnid in candidates:
        if split in ("rand", "none"):
            pool = hierarchy.leaves(hierarchy.splitting_node(wnid))  # the superclass's classes, sorted
            drawn = [str(w) for w in rng.choice(pool, n_subclasses, replace=False)]
            source, target = (drawn[:half], drawn[half:]) if split == "rand" else ([], [])
        else:
            source, target = _structured_split(hierarchy, wnid, half, split)
            drawn = source + target
        supers.append(BreedsSuperclass(wnid, hierarchy.name(wnid), tuple(drawn), tuple(source), tuple(target)))
    return BreedsTask(level, ancestor, n_subclasses, split, seed, tuple(supers))


def _structured_split(hierarchy: Hierarchy, superclass: str, half: int, split: str) -> tuple[list[str], list[str]]:
    """``good`` spreads each child's classes over both sides; ``bad`` keeps them on one side."""
    node = hierarchy.splitting_node(superclass)
    groups = [hierarchy.leaves(c) for c in hierarchy.children.get(node, [node])]
    groups.sort(key=len, reverse=True)  # stable: equal sizes keep id order
    source: list[str] = []
    target: list[str] = []
    spare: list[str] = []
    for group in groups:
        if split == "good":
            if len(group) == 1:
                take = 1 if len(source) < half else 0
            else:
                take = min(len(group) // 2, half - len(source))
            target_room = half - len(target)
            if len(source) < half:
                source.extend(group[:take])
            if target_room > 0:
                target.extend(group[take : take + target_room])
        else:
            if len(source) <= len(target) and len(source) < half:
                side = source
            elif len(target) < half:
                side = target
            else:
                continue
            room = half - len(side)
            side.extend(group[:room])
            spare.extend(group[room:])
    if split == "bad":
        for side in (source, target):
            if len(side) < half:
                side.extend(spare[: half - len(side)])
    if len(source) != half or len(target) != half or set(source) & set(target):
        raise SubclassbenchError(
            f"superclass {superclass} cannot be split '{split}' into {half}+{half} subclasses; use split 'rand'"
        )
    return source, target


def shuffle_control(task: BreedsTask, seed: int = 2) -> BreedsTask:
    """Pool the chosen subclasses in label order, shuffle them, re-chunk into groups of N.

    Each new superclass then holds N unrelated subclasses (Nguyen & Kornblith
    2023's control). Within a group the first N/2 are source, the rest target.
    """
    pool = [wnid for sup in task.superclasses for wnid in sup.subclasses]
    np.random.RandomState(seed).shuffle(pool)
    n, half = task.n_subclasses, task.n_subclasses // 2
    groups = [tuple(pool[i : i + n]) for i in range(0, len(pool), n)]
    split = task.split != "none"
    supers = tuple(
        BreedsSuperclass(
            f"shuffled-{i:02d}",
            f"shuffled group {i}",
            group,
            group[:half] if split else (),
            group[half:] if split else (),
        )
        for i, group in enumerate(groups)
    )
    return BreedsTask(task.level, task.ancestor, n, task.split, seed, supers, shuffled=True)


# --------------------------------------------------------------------------- task files

BREEDS_CITATION = (
    "Santurkar, S., Tsipras, D. & Madry, A. (2021). BREEDS: Benchmarks for Subpopulation Shift. ICLR 2021 "
    "(arXiv:2008.04859). Subclass clusterability on BREEDS after Nguyen, T. & Kornblith, S. (2023), "
    "'Probing clustering in neural network representations', arXiv:2311.07864. Images: Russakovsky et al. "
    "(2015), ImageNet Large Scale Visual Recognition Challenge, IJCV."
)
# ImageNet train images held out for layer selection: a hash range of ids, so
# the split is fixed by the ids alone, whatever the folder layout or order.
VAL_SALT = "subclassbench-breeds-val-v1"
VAL_FRACTION = 0.04  # ≈ 50 of ~1,300 training images per class


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML flow scalar


def _flow(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(items) + "]"


def _description(name: str, task: BreedsTask, val_fraction: float = 0.04) -> str:
    kind = "shuffled control of " if task.shuffled else ""
    return (
        f"BREEDS {kind}{name.removeprefix('breeds-').removesuffix('-shuffled')}: {len(task.superclasses)} "
        f"superclasses x {task.n_subclasses} ImageNet subclasses (level {task.level}, "
        f"{'subtree of ' + task.ancestor if task.ancestor else 'whole tree'}, split '{task.split}', seed {task.seed})."
        + (
            " The same subclasses as the unshuffled task, pooled, shuffled with RandomState(2) and re-chunked,"
            " so each superclass groups unrelated classes."
            if task.shuffled
            else ""
        )
        + " Clusterability is scored on the ImageNet validation images of every subclass (50 each); the ImageNet"
        f" training images form the train split, minus a fixed hash-selected {val_fraction:.0%} held out as 'val'."
    )


def task_yaml(
    name: str,
    task: BreedsTask,
    hierarchy: Hierarchy,
    hierarchy_sha256: dict[str, str],
    command: str,
    description: str | None = None,
    image_size: int = 224,
    val_fraction: float = VAL_FRACTION,
    class_list: tuple[str, int, str] | None = None,
    citation: str | None = None,
    ood_sets: tuple[str, ...] = (),
) -> str:
    """The frozen task file: explicit WNIDs, ImageNet class indices and splits; needs no hierarchy files.

    ``image_size`` below 224 is for datasets of small ImageNet photographs (Tiny ImageNet's 64 px): the
    images are read at that size, uncropped. ``class_list`` (file name, count, sha256) records the list the
    candidates were restricted to."""
    n_classes = sum(len(s.subclasses) for s in task.superclasses)
    description = description or _description(name, task, val_fraction)
    if image_size == 224:
        image_lines = [
            "  image_shape: [3, 224, 224]",
            "  preprocessing: {resize: 256, center_crop: 224, interpolation: bilinear}",
            "  hf_dataset: {path: ILSVRC/imagenet-1k, image_column: image, label_column: label}",
        ]
    else:  # no hub fallback: imagenet-1k's full-size photographs are not these images
        image_lines = _small_image_lines(image_size)
    restricted = [] if class_list is None else [f"    {_class_list_record(class_list)}"]
    lines = [
        f"# Generated by `{command}`; do not edit by hand.",
        f"name: {name}",
        "version: 1",
        "description: >",
        *(f"  {line}" for line in _wrap(description)),
        "citation: >",
        *(f"  {line}" for line in _wrap(BREEDS_CITATION + (f" {citation}" if citation else ""))),
        "data:",
        "  source: imagenet",
        *image_lines,
        "  breeds:",
        f"    level: {task.level}",
        f"    ancestor: {task.ancestor or 'null'}",
        f"    subclasses_per_superclass: {task.n_subclasses}",
        f"    split: {task.split}",
        f"    seed: {task.seed}",
        f"    shuffled: {'true' if task.shuffled else 'false'}",
        "    hierarchy_sha256:",
        *(f"      {f}: {h}" for f, h in sorted(hierarchy_sha256.items())),
        *restricted,
        "hierarchy:",
        "  superclasses:",
    ]
    for sup in task.superclasses:
        lines += [f"    - id: {sup.wnid}", f"      name: {_q(sup.name)}", "      subclasses:"]
        lines += [
            f"        - {{id: {w}, name: {_q(hierarchy.class_names[w])}, index: {hierarchy.class_index[w]}}}"
            for w in sup.subclasses
        ]
    if task.split != "none":
        lines += [
            "transfer:",
            "  description: >",
            "    BREEDS subpopulation shift: probes learn superclass labels on the source",
            "    subclasses (ImageNet train) and are scored on the source and, unchanged,",
            "    on the target subclasses (ImageNet validation).",
            "  id_train_split: train",
            "  id_test_split: test",
            "  ood_split: test",
            f"  source: {_flow([w for s in task.superclasses for w in s.source])}",
            f"  target: {_flow([w for s in task.superclasses for w in s.target])}",
            "  refit: target_fine",
        ]
        if ood_sets:
            lines.append("  ood_sets:")
            lines += [f"    - {{name: {o}, task: {o}, train_split: train, test_split: test}}" for o in ood_sets]
    lines += [
        "evaluation_split: test",
        "validation_split: val",
        "splits:",
        "  train:",
        "    source_split: train",
        f"    select: {{hash_range: [{val_fraction}, 1.0], salt: {VAL_SALT}}}",
        "  val:",
        "    source_split: train",
        f"    select: {{hash_range: [0.0, {val_fraction}], salt: {VAL_SALT}}}",
        "  test:",
        "    source_split: val",
        "    select: all",
        f"    canonical_count: {50 * n_classes}",
    ]
    return "\n".join(lines) + "\n"


def _small_image_lines(image_size: int) -> list[str]:
    """``data`` lines for photographs stored at ``image_size`` px (Tiny ImageNet): read at that size, uncropped."""
    return [
        f"  image_shape: [3, {image_size}, {image_size}]",
        f"  preprocessing: {{resize: {image_size}, center_crop: {image_size}, interpolation: bilinear}}",
    ]


def _class_list_record(class_list: tuple[str, int, str]) -> str:
    """The ``classes`` record of a task built over a class list: its file name, size and sha256."""
    return f"classes: {{file: {_q(class_list[0])}, count: {class_list[1]}, sha256: {class_list[2]}}}"


def _wrap(text: str, width: int = 100) -> list[str]:
    return textwrap.wrap(text, width) or [""]


@dataclass(frozen=True)
class BuildOptions:
    """The options of ``subclassbench tasks build-breeds``; the task file records them as its command."""

    preset: str | None = None
    level: int | None = None
    subclasses: int | None = None
    ancestor: str | None = None
    split: str = "rand"
    seed: int = 2
    shuffled: bool = False
    root: str = ROOT
    name: str | None = None
    classes: str | None = None  # a file of WNIDs, one per line: candidates are restricted to these classes
    image_size: int = 224
    val_fraction: float = VAL_FRACTION
    description: str | None = None
    citation: str | None = None  # added to the BREEDS citation (e.g. the dataset the images come from)
    ood_sets: tuple[str, ...] = ()  # OOD-set tasks for the transfer probes (class-disjoint, same dataset)

    def task_name(self) -> str:
        if self.name is not None:
            return self.name
        if self.preset is None:
            raise SubclassbenchError("pass --name for a task built without --preset")
        return f"breeds-{self.preset}" + ("-shuffled" if self.shuffled else "")

    def command(self) -> str:
        """The command line that rebuilds this task (non-default options only)."""
        words = ["subclassbench tasks build-breeds"]
        if self.preset:
            words.append(f"--preset {self.preset}")
        for flag, value in (("--level", self.level), ("--subclasses", self.subclasses), ("--ancestor", self.ancestor)):
            if value is not None:
                words.append(f"{flag} {value}")
        if self.split != "rand":
            words.append(f"--split {self.split}")
        if self.seed != 2:
            words.append(f"--seed {self.seed}")
        if self.shuffled:
            words.append("--shuffled")
        if self.root != ROOT:
            words.append(f"--root {self.root}")
        if self.classes is not None:
            words.append(f"--classes {Path(self.classes).name}")
        if self.image_size != 224:
            words.append(f"--image-size {self.image_size}")
        if self.val_fraction != VAL_FRACTION:
            words.append(f"--val-fraction {self.val_fraction}")
        if self.name is not None and self.preset is None:
            words.append(f"--name {self.name}")
        words += [f"--ood-set {o}" for o in self.ood_sets]
        return " ".join(words)


def build_task_file(hierarchy_dir: str | Path, options: BuildOptions) -> str:
    """The frozen task file's text; a task that would not load raises instead of being returned."""
    from subclassbench.tasks.task import Task

    level, ancestor, subclasses = options.level, options.ancestor, options.subclasses
    if options.preset is not None:
        if options.preset not in PRESETS:
            raise SubclassbenchError(f"unknown BREEDS preset '{options.preset}'; choose one of {', '.join(PRESETS)}")
        p = PRESETS[options.preset]
        level = p.level if level is None else level
        ancestor = p.ancestor if ancestor is None else ancestor
        subclasses = p.subclasses if subclasses is None else subclasses
    if level is None or subclasses is None:
        raise SubclassbenchError("pass --preset, or both --level and --subclasses")
    if not 8 <= options.image_size <= 1024:
        raise SubclassbenchError("--image-size must be between 8 and 1024 pixels")
    if not 0.0 < options.val_fraction < 0.5:
        raise SubclassbenchError("--val-fraction must be above 0 and below 0.5 (of each class's training images)")
    only, class_list = None, None
    if options.classes is not None:
        only, class_list = read_class_list(Path(options.classes))
    hierarchy = Hierarchy.from_dir(hierarchy_dir, options.root, only)
    task = derive(hierarchy, level, subclasses, ancestor, options.split, options.seed)
    if options.shuffled:
        task = shuffle_control(task, options.seed)
    hashes = {f: sha256_file(Path(hierarchy_dir) / f) for f in HIERARCHY_FILES}
    text = task_yaml(
        options.task_name(), task, hierarchy, hashes, options.command(), options.description,
        options.image_size, options.val_fraction, class_list, options.citation, options.ood_sets,
    )  # fmt: skip
    Task.from_dict(yaml.safe_load(text))  # a task that would not load is never written
    return text


def ood_complement_yaml(
    name: str,
    hierarchy: Hierarchy,
    listed: set[str],
    class_list: tuple[str, int, str],
    excluded: list[str],
    image_size: int,
    citation: str,
    val_per_class: int = 50,
    same_classes: dict[str, dict[str, str]] | None = None,
) -> str:
    """An OOD set of the listed classes that are in none of ``excluded`` tasks: one superclass holding every
    class, ImageNet-layout images at ``image_size`` (Harun et al. 2024's class-disjoint OOD set)."""
    from subclassbench.tasks.task import load_task

    used = {c.id for task in excluded for s in load_task(task, by_name_only=True).superclasses for c in s.subclasses}
    classes = sorted(listed - used)
    if not classes:
        raise SubclassbenchError("every listed class is in the excluded tasks; nothing is left for an OOD set")
    description = (
        f"{len(classes)} classes of {class_list[0]} ({class_list[1]} ImageNet classes) that are in none of "
        f"{', '.join(excluded)}: an OOD set for the transfer probes whose classes are disjoint from "
        "theirs (Harun et al. 2024); list it under those tasks' transfer.ood_sets. "
        f"Images at {image_size} px from --data (ImageNet class folders: train/<wnid>, val/<wnid>); the probes "
        "train on train and are scored on val."
    )
    lines = [
        "# Generated by subclassbench.tasks.breeds.ood_complement_yaml (see docs/breeds.md); do not edit by hand.",
        f"name: {name}",
        "version: 1",
        "description: >",
        *(f"  {line}" for line in _wrap(description)),
        "citation: >",
        *(f"  {line}" for line in _wrap(citation)),
        "data:",
        "  source: imagenet",
        *_small_image_lines(image_size),
        f"  {_class_list_record(class_list)}",
        f"  excludes: {_flow(list(excluded))}",
        *_same_classes_lines(same_classes or {}, set(classes)),
        "hierarchy:",
        "  superclasses:",
        "    - id: all",
        "      name: all",
        "      subclasses:",
        *(
            f"        - {{id: {w}, name: {_q(hierarchy.class_names[w])}, index: {hierarchy.class_index[w]}}}"
            for w in classes
        ),
        "evaluation_split: test",
        "splits:",
        "  train:",
        "    source_split: train",
        "    select: all",
        "  test:",
        "    source_split: val",
        "    select: all",
        f"    canonical_count: {val_per_class * len(classes)}",
    ]
    return "\n".join(lines) + "\n"


def same_classes_by_wordnet(hierarchy: Hierarchy, synsets: dict[str, str]) -> dict[str, str]:
    """Dataset classes that are WordNet descendants of another dataset's class synsets (``{class id: synset}``,
    e.g. CIFAR-10's cat → n02121808 domestic cat): class → the other dataset's class id."""
    out: dict[str, str] = {}
    for their, synset in synsets.items():
        if synset in hierarchy.level:
            out.update((leaf, their) for leaf in hierarchy.leaves(synset))
    return dict(sorted(out.items()))


def _same_classes_lines(same: dict[str, dict[str, str]], kept: set[str]) -> list[str]:
    blocks = {task: {k: v for k, v in mapping.items() if k in kept} for task, mapping in same.items()}
    blocks = {task: mapping for task, mapping in blocks.items() if mapping}
    if not blocks:
        return []
    lines = ["  same_classes_as:"]
    for task, mapping in sorted(blocks.items()):
        lines.append(f"    {task}: {{{', '.join(f'{k}: {v}' for k, v in mapping.items())}}}")
    return lines


MAX_CLASS_LIST_BYTES = 1 << 20


def read_class_list(path: Path) -> tuple[set[str], tuple[str, int, str]]:
    """WNIDs, one per line (Tiny ImageNet's ``wnids.txt``), and the list's record: file name, count, sha256."""
    try:
        if path.stat().st_size > MAX_CLASS_LIST_BYTES:
            raise SubclassbenchError(f"--classes {path} is larger than 1 MiB; pass a list of WNIDs, one per line")
        data = path.read_bytes()
        text = data.decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise SubclassbenchError(f"cannot read --classes {path} ({first_line(exc)}); pass a text file") from None
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    if not wnids:
        raise SubclassbenchError(f"--classes {path} is empty; list class ids (WNIDs), one per line")
    # Ids are checked against the hierarchy's classes when it is read (Hierarchy.from_dir).
    return set(wnids), (path.name, len(set(wnids)), sha256_bytes(data))


def write_task_file(text: str, path: Path, force: bool = False) -> Path:
    """Write a built task file atomically; an existing file is replaced only with ``force``."""
    from subclassbench.core.files import atomic_write

    if path.exists() and not force:
        raise SubclassbenchError(f"{path} exists; pass --force to overwrite it or --out another path")
    return atomic_write(path, text)


def _check_acyclic(children: dict[str, list[str]]) -> None:
    """The hierarchy must be a DAG: a cycle would make levels and leaves endless (iterative three-colour DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in children:
        if state.get(start):
            continue
        stack = [(start, iter(children.get(start, ())))]
        state[start] = 1
        while stack:
            node, kids = stack[-1]
            child = next(kids, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                raise SubclassbenchError(f"the BREEDS hierarchy has a cycle through {child}; fix class_hierarchy.txt")
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(children.get(child, ()))))


def _pair(line: str, sep: str) -> tuple[str, str]:
    left, right = line.rstrip("\n").split(sep, 1)
    return left.strip(), right.strip()
