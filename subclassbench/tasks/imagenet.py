"""The ImageNet data source for BREEDS tasks: class folders, flat val + label file, or Hugging Face.

Sample ids are image file names (``ILSVRC2012_val_00000001.JPEG``,
``n01440764_10026.JPEG``), so the same image has the same id in every
layout and a task's hash-selected splits and manifest digests agree across
them. Labels are WNIDs. Only the task's classes are read.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from subclassbench.core.hashing import sha256_bytes
from subclassbench.core.network import hub_reachable
from subclassbench.errors import DataMissingError, SubclassbenchError, first_line
from subclassbench.tasks.datasources import (
    DATA_SOURCES,
    IMAGE_SUFFIXES,
    DataSource,
    Decoding,
    EncodedBatch,
    FileImageSet,
    ImageSet,
    decode_image,
    load_saved_dataset,
)

if TYPE_CHECKING:
    from subclassbench.tasks.task import Task

# ImageNet's own split names → Hugging Face imagenet-1k split names.
HF_SPLITS = {"train": "train", "val": "validation"}
HF_CHUNK = 512


def layout_help(task_name: str) -> str:
    return (
        f"task '{task_name}' needs ImageNet: pass --data ROOT where ROOT holds train/<wnid>/*.JPEG and "
        "val/<wnid>/*.JPEG (or a flat val/ with LOC_val_solution.csv or val_labels.txt in ROOT), or a Hugging "
        "Face imagenet-1k dataset saved with datasets.save_to_disk (see docs/breeds.md)"
    )


def load_imagenet(
    task_name: str,
    config: dict[str, Any],
    source_split: str,
    data_path: str | Path | None,
    classes: dict[str, int | None],
    decoding: Decoding,
    primary: bool = True,
) -> ImageSet:
    """The images of ``classes`` (WNID → ImageNet class index) in one ImageNet split."""
    if data_path is None:
        return _load_hub(task_name, config, source_split, classes, decoding)
    root = Path(data_path).expanduser()
    if not root.is_dir():
        raise SubclassbenchError(f"ImageNet root {root} is not a folder; " + layout_help(task_name))
    if (root / "dataset_dict.json").exists() or (root / "dataset_info.json").exists():
        import datasets

        loaded = load_saved_dataset(root)
        if isinstance(loaded, datasets.DatasetDict):
            name = HF_SPLITS.get(source_split, source_split)
            if name not in loaded:
                raise SubclassbenchError(f"saved dataset {root} has splits {list(loaded)} but not '{name}'")
            loaded = loaded[name]
        elif not primary:  # one unnamed split serves only the evaluated split, never also as training data
            raise DataMissingError(
                f"saved dataset {root} holds one unnamed split, so it cannot also serve the '{source_split}' split; "
                "save a DatasetDict with named splits"
            )
        return _from_hf(loaded, config, source_split, classes, decoding)
    folder = root / source_split
    if not folder.is_dir():
        raise DataMissingError(f"{root} has no '{source_split}' folder; " + layout_help(task_name))
    if any((folder / wnid).is_dir() for wnid in classes):
        return _from_class_folders(folder, classes, decoding)
    labels = _find_label_file(root, source_split)
    if labels is None:
        raise SubclassbenchError(
            f"{folder} has neither <wnid>/ class folders nor a label file (LOC_{source_split}_solution.csv or "
            f"{source_split}_labels.txt in {root}); " + layout_help(task_name)
        )
    return _from_flat_folder(folder, labels, classes, decoding)


def _from_class_folders(folder: Path, classes: dict[str, int | None], decoding: Decoding) -> FileImageSet:
    missing = [w for w in classes if not (folder / w).is_dir()]
    if missing:
        raise SubclassbenchError(
            f"{folder} lacks class folders for {len(missing)} of the task's {len(classes)} WNIDs "
            f"(first: {missing[0]}); the ImageNet copy is incomplete"
        )
    paths: list[Path] = []
    labels: list[str] = []
    for wnid in sorted(classes):
        files = sorted(f for f in (folder / wnid).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise SubclassbenchError(f"class folder {folder / wnid} holds no images; the ImageNet copy is incomplete")
        paths.extend(files)
        labels.extend([wnid] * len(files))
    return _file_set(paths, labels, decoding)


def _find_label_file(root: Path, split: str) -> Path | None:
    for candidate in (root / f"LOC_{split}_solution.csv", root / f"{split}_labels.txt", root / split / "labels.txt"):
        if candidate.is_file():
            return candidate
    return None


def _read_label_file(path: Path, classes: dict[str, int | None]) -> dict[str, str]:
    """File stem → WNID. Kaggle's CSV (ImageId, PredictionString) or lines ``<file> <wnid or class index>``."""
    by_index = {index: wnid for wnid, index in classes.items() if index is not None}
    out: dict[str, str] = {}
    try:
        if path.suffix == ".csv":
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    out[Path(row["ImageId"]).stem] = row["PredictionString"].split()[0]
            return out
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            name, label = line.split()[:2]
            if label.isdigit():
                wnid = by_index.get(int(label))
                if wnid is None:
                    continue  # a class outside this task
                label = wnid
            out[Path(name).stem] = label
    except (KeyError, ValueError, IndexError, AttributeError, csv.Error, UnicodeDecodeError) as exc:
        raise SubclassbenchError(
            f"cannot parse label file {path}: {first_line(exc)}; expected '<file> <wnid>' lines"
        ) from None
    return out


def _from_flat_folder(
    folder: Path, label_file: Path, classes: dict[str, int | None], decoding: Decoding
) -> FileImageSet:
    wnid_of = _read_label_file(label_file, classes)
    rows = []
    for path in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()):
        wnid = wnid_of.get(path.stem)
        if wnid in classes:
            rows.append((path, wnid))
    if not rows:
        raise SubclassbenchError(f"no image in {folder} has a label of this task according to {label_file}")
    return _file_set([p for p, _ in rows], [w for _, w in rows], decoding)


def _file_set(paths: list[Path], labels: list[str], decoding: Decoding) -> FileImageSet:
    return FileImageSet(
        paths=paths,
        labels=np.asarray(labels, dtype=str),
        ids=[p.name for p in paths],
        image_shape=decoding.image_shape,
        resize=decoding.resize,
        interpolation=decoding.interpolation,
    )


# --------------------------------------------------------------------------- Hugging Face


@dataclass
class HFImageSet(ImageSet):
    """Rows of a Hugging Face image dataset, decoded lazily from their stored bytes."""

    decodes = True

    dataset: Any  # datasets.Dataset whose image column is cast to Image(decode=False)
    rows: np.ndarray
    labels: np.ndarray
    ids: list[str]
    image_column: str
    decoding: Decoding
    _hashes: list[str] | None = field(default=None, repr=False)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.decoding.image_shape

    def with_decoding(self, decoding: Decoding) -> HFImageSet:
        return dataclasses.replace(self, decoding=decoding)

    def _encoded(self, rows: list[int]) -> list[bytes]:
        out = []
        for item in self.dataset[rows][self.image_column]:
            data = item.get("bytes")
            if data is None and item.get("path"):
                data = Path(item["path"]).read_bytes()
            out.append(data or b"")
        return out

    def load(self, index: np.ndarray) -> torch.Tensor | EncodedBatch:
        encoded = self._encoded(self.rows[index].tolist())
        if self.decoding.decoder != "pil":  # decoded on the evaluation device (datasources.DECODERS)
            return EncodedBatch(encoded, [f"{self.ids[i]} (row {self.rows[i]})" for i in index], self.decoding)
        pairs = zip(index, encoded, strict=True)
        images = [decode_image(data, self.decoding, f"{self.ids[i]} (row {self.rows[i]})") for i, data in pairs]
        return torch.stack(images)

    def content_hashes(self) -> list[str]:
        if self._hashes is None:
            hashes: list[str] = []
            for start in range(0, len(self.rows), HF_CHUNK):
                hashes.extend(sha256_bytes(b) for b in self._encoded(self.rows[start : start + HF_CHUNK].tolist()))
            self._hashes = hashes
        return self._hashes

    def subset(self, index: np.ndarray) -> HFImageSet:
        return HFImageSet(
            dataset=self.dataset,
            rows=self.rows[index],
            labels=self.labels[index],
            ids=[self.ids[i] for i in index],
            image_column=self.image_column,
            decoding=self.decoding,
            _hashes=None if self._hashes is None else [self._hashes[i] for i in index],
        )


def _file_id(path: str) -> str:
    """The ImageNet file name; the hub's imagenet-1k appends ``_<wnid>`` (``ILSVRC2012_val_00000001_n01751748``)."""
    name = Path(path).name
    stem, suffix = Path(name).stem, Path(name).suffix
    match = re.fullmatch(r"(.+)_n\d{8}", stem)  # original names never end in a wnid (n01440764_10026)
    return match.group(1) + suffix if match else name


def _from_hf(
    dataset: Any, config: dict[str, Any], source_split: str, classes: dict[str, int | None], decoding: Decoding
) -> HFImageSet:
    import datasets

    hf = config.get("hf_dataset", {})
    image_col, label_col = hf.get("image_column", "image"), hf.get("label_column", "label")
    missing = [c for c in (image_col, label_col) if c not in dataset.column_names]
    if missing:
        raise SubclassbenchError(
            f"Hugging Face dataset lacks columns {missing} (has {dataset.column_names}); "
            "set data.hf_dataset.image_column/label_column in the task file"
        )
    wnid_of = {index: wnid for wnid, index in classes.items() if index is not None}
    if len(wnid_of) != len(classes):
        raise SubclassbenchError("the task's subclasses need an ImageNet class 'index' to read a Hugging Face dataset")
    try:
        labels = np.asarray(dataset[label_col], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise SubclassbenchError(
            f"label column '{label_col}' must hold ImageNet class indices ({first_line(exc, 80)}); "
            "set data.hf_dataset.label_column in the task file"
        ) from None
    rows = np.flatnonzero(np.isin(labels, list(wnid_of)))
    try:
        dataset = dataset.cast_column(image_col, datasets.Image(decode=False))
    except Exception as exc:  # arrow refuses columns that are not images
        raise SubclassbenchError(f"column '{image_col}' does not hold images ({first_line(exc, 80)})") from None
    ids: list[str] = []
    for start in range(0, len(rows), HF_CHUNK):
        chunk = rows[start : start + HF_CHUNK].tolist()
        for row, item in zip(chunk, dataset[chunk][image_col], strict=True):
            path = item.get("path")
            ids.append(_file_id(path) if path else f"{source_split}/{row:08d}")
    return HFImageSet(
        dataset=dataset,
        rows=rows,
        labels=np.asarray([wnid_of[int(v)] for v in labels[rows]], dtype=str),
        ids=ids,
        image_column=image_col,
        decoding=decoding,
    )


def _load_hub(
    task_name: str, config: dict[str, Any], source_split: str, classes: dict[str, int | None], decoding: Decoding
) -> HFImageSet:
    hub = config.get("hf_dataset")
    if not hub or not hub_reachable():  # offline: say what to do now, not after the hub client's retries
        raise SubclassbenchError(layout_help(task_name))
    try:
        import datasets

        dataset = datasets.load_dataset(hub["path"], split=HF_SPLITS.get(source_split, source_split))
    except Exception as exc:  # the hub raises many types when offline or gated
        raise SubclassbenchError(f"{first_line(exc, 120)}; " + layout_help(task_name)) from None
    return _from_hf(dataset, config, source_split, classes, decoding)


def _load_split(
    task: Task, split: str, path: str | Path | None, primary: bool, decoding: Decoding | None
) -> tuple[ImageSet, str]:
    classes = {str(sub.id): sub.index for sup in task.superclasses for sub in sup.subclasses}  # ids are WNIDs
    decoding = decoding or task.decoding()
    if decoding is None:  # the task schema requires `preprocessing` of an imagenet task
        raise SubclassbenchError(f"task '{task.name}' has no preprocessing; an imagenet task needs one")
    images = load_imagenet(task.name, task.data, split, path, classes, decoding, primary)
    return images, str(path) if path else f"hf:{task.data['hf_dataset']['path']}"


DATA_SOURCES.register("imagenet", DataSource("imagenet", _load_split, needs_data_path=True))
