"""Data sources: where a task's samples come from.

Every source yields an :class:`ImageSet`: ids, integer labels (the dataset's
own label ids) and a ``load(index)`` that returns a float tensor in [0, 1]
(``B×C×H×W`` for images, ``B×D`` for vectors) at the dataset's native size.
Resizing and normalisation belong to the encoder (see ``preprocessing.py``).

Sources: scikit-learn digits (ships with scikit-learn: the offline default),
a generated hierarchical Gaussian mixture, and image-classification data from
an ``.npz`` file, an image-folder tree, a saved or hub Hugging Face dataset.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from subclassbench.core.files import inside, tree_file
from subclassbench.core.hashing import sha256_bytes, sha256_files
from subclassbench.core.network import hub_reachable
from subclassbench.core.registry import Registry
from subclassbench.errors import DataMissingError, SubclassbenchError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageSet:
    """A labelled set of samples that loads batches on demand."""

    ids: list[str]
    labels: np.ndarray
    decodes = False  # True when loading decodes encoded files (worth loader processes)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def load(self, index: np.ndarray) -> torch.Tensor | EncodedBatch:
        """Samples ``index`` as a B×C×H×W float tensor, or (``--decoder torchvision``) still encoded, to be
        decoded on the evaluation device."""
        raise NotImplementedError

    def content_hashes(self) -> list[str]:
        raise NotImplementedError

    def subset(self, index: np.ndarray) -> ImageSet:
        raise NotImplementedError


@dataclass
class ArrayImageSet(ImageSet):
    """Samples held in memory as one array (uint8 images, or float vectors).

    ``scale`` maps stored values to [0, 1]: 1/255 for uint8 pixels, 1/16 for
    scikit-learn digits, 1 for synthetic vectors. ``channels_last`` marks
    ``N×H×W×C`` storage (the npz / PIL convention).
    """

    array: np.ndarray
    labels: np.ndarray
    ids: list[str]
    scale: float = 1.0
    channels_last: bool = True

    @property
    def sample_shape(self) -> tuple[int, ...]:
        shape = self.array.shape[1:]
        if len(shape) == 3 and self.channels_last:
            return (shape[2], shape[0], shape[1])
        if len(shape) == 2:  # grayscale H×W
            return (1, *shape)
        return tuple(shape)

    def load(self, index: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(self.array[index])).float()
        if self.scale != 1.0:
            batch.mul_(self.scale)
        if batch.ndim == 4 and self.channels_last:
            batch = batch.permute(0, 3, 1, 2)
        elif batch.ndim == 3:
            batch = batch.unsqueeze(1)
        return batch.contiguous()

    def content_hashes(self) -> list[str]:
        return [sha256_bytes(np.ascontiguousarray(row).tobytes()) for row in self.array]

    def subset(self, index: np.ndarray) -> ArrayImageSet:
        return ArrayImageSet(
            array=self.array[index],
            labels=self.labels[index],
            ids=[self.ids[i] for i in index],
            scale=self.scale,
            channels_last=self.channels_last,
        )


@dataclass(frozen=True)
class Decoding:
    """How encoded images become fixed-size tensors: resize the shorter side, then centre-crop.

    ``resize=None`` squashes every image straight to ``image_shape`` (small
    datasets whose images already share one size); ImageNet uses 256 → 224.
    """

    image_shape: tuple[int, int, int]
    resize: int | None = None
    interpolation: str = "bilinear"
    decoder: str = "pil"  # see DECODERS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image_shape": list(self.image_shape), "interpolation": self.interpolation}
        if self.resize is not None:
            out.update(resize=self.resize, center_crop=list(self.image_shape[1:]))
        if self.decoder != "pil":  # absent for the reference decoder, so existing cache keys stay valid
            out["decoder"] = self.decoder
        return out

    def resized_size(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(new width, new height, left, top): torchvision's Resize(int) + CenterCrop, or a straight resize."""
        _channels, crop_h, crop_w = self.image_shape
        if self.resize is None:
            return crop_w, crop_h, 0, 0
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)  # the long side truncates
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        return new_w, new_h, round((new_w - crop_w) / 2), round((new_h - crop_h) / 2)  # the offset rounds


# How encoded images are decoded and resized: "pil" (the reference: Pillow, in the loader processes) or
# "torchvision" (torchvision.io's libjpeg-turbo / nvJPEG decoder and torch's antialiased resize, on the
# evaluation device: a GPU decodes and resizes whole batches). They differ in the last grey level of some
# pixels, so the decoder keys the feature cache and is recorded with the split (docs/scaling.md).
DECODERS = ("pil", "torchvision")


HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit (or 32-bit integer) greyscale
MAX_HIGH_BIT = 65535


def _truthful(img: Any, channels: int, where: str) -> Any:
    """``img`` in the mode the task reads ("RGB", "L", or "F" for more than 8 bits), its values preserved.

    Pillow's ``convert`` clips 16-bit greyscale to 0 or 255 and drops alpha whatever it hides; both
    would be evaluated as if they were the image. Here 16-bit values are scaled into [0, 1], an alpha
    channel must be fully opaque, and what cannot be read truthfully (float images outside [0, 1],
    32-bit integers beyond 16 bits) is refused with the fix.
    """
    from PIL import Image

    mode = img.mode
    if mode in HIGH_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        if values.size and (values.min() < 0 or values.max() > MAX_HIGH_BIT):
            raise SubclassbenchError(
                f"image {where} holds {mode} integers outside 0-{MAX_HIGH_BIT}; save it as 8- or 16-bit PNG or JPEG"
            )
        return Image.fromarray((values / MAX_HIGH_BIT).astype(np.float32), mode="F")
    if mode == "F":
        values = np.asarray(img, dtype=np.float32)
        if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise SubclassbenchError(
                f"image {where} is a float image with values outside [0, 1]; save it as 8- or 16-bit PNG or JPEG"
            )
        return img
    if (
        "A" in mode
        or (mode == "P" and "transparency" in img.info)
        or (mode in ("RGB", "L") and "transparency" in img.info)
    ):
        alpha = img.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:
            raise SubclassbenchError(
                f"image {where} has transparent pixels, whose hidden colours would be read as the image; flatten it "
                "onto a background first"
            )
    return img.convert("RGB" if channels == 3 else "L")


def decode_image(source: Path | bytes, decoding: Decoding, where: str) -> torch.Tensor:
    """One encoded image → C×H×W float tensor in [0, 1]; a corrupt, transparent or oversized file is one error line.

    8-bit images are resized as 8-bit images (Pillow's reference behaviour); 16-bit ones in float, so
    that their extra precision is kept rather than rounded away."""
    import io

    from PIL import Image

    channels, height, width = decoding.image_shape
    method = Image.Resampling.BICUBIC if decoding.interpolation == "bicubic" else Image.Resampling.BILINEAR
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that: a header claiming a huge size
            # (a decompression bomb) is refused at the first limit, before any pixel is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
                img = _truthful(opened, channels, where)
                if decoding.resize is None:
                    if img.size != (width, height):
                        img = img.resize((width, height), method)
                else:
                    new_w, new_h, left, top = decoding.resized_size(*img.size)
                    img = img.resize((new_w, new_h), method)
                    img = img.crop((left, top, left + width, top + height))
                pixels = np.asarray(img, dtype=np.float32 if img.mode == "F" else np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SubclassbenchError(
            f"image {where} claims more pixels than is safe to decode ({first_line(exc, 80)}); it may be a "
            "decompression bomb: remove or replace it"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise SubclassbenchError(f"cannot decode image {where}: {exc}; remove or replace the corrupt file") from None
    if pixels.dtype == np.float32:
        tensor = torch.from_numpy(pixels.copy()).clamp_(0.0, 1.0)  # bicubic overshoot stays in range, as 8-bit clips
        return tensor.unsqueeze(0).expand(channels, -1, -1).contiguous()  # greyscale into an RGB task: replicated
    tensor = torch.from_numpy(pixels.copy()).float().div_(255.0)
    return tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor.unsqueeze(0)


@dataclass
class EncodedBatch:
    """A batch of encoded images, loaded (read, not decoded) by the loader processes and decoded by
    :meth:`decode` on the evaluation device (``--decoder torchvision``)."""

    data: list[bytes]
    where: list[str]  # each image's name, for a one-line error
    decoding: Decoding

    def __len__(self) -> int:
        return len(self.data)

    def decode(self, device: torch.device) -> torch.Tensor:
        """B×C×H×W floats in [0, 1] on ``device``: decoded (a whole batch at once by nvJPEG on a GPU), resized
        with antialiasing and rounded to grey levels as Pillow's 8-bit resize is, then centre-cropped."""
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg

        channels, height, width = self.decoding.image_shape
        mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
        raw = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in self.data]
        images: list[torch.Tensor] | None = None
        with warnings.catch_warnings():
            # torchvision 0.29 (pinned) deprecates its decoders in favour of TorchCodec; they work as documented.
            warnings.simplefilter("ignore", DeprecationWarning)
            if device.type == "cuda":
                try:
                    images = decode_jpeg(raw, mode=mode, device=device)
                except RuntimeError:  # a PNG or a corrupt file among them: decode one by one below
                    images = None
            if images is None:
                images = [self._decode_one(r, i, mode, decode_image) for i, r in enumerate(raw)]
        out = torch.empty((len(raw), channels, height, width), device=device)
        method = "bicubic" if self.decoding.interpolation == "bicubic" else "bilinear"
        for i, image in enumerate(images):
            # 16-bit PNGs decode to uint16: scale to the 8-bit range the rest of this path works in.
            image = image.to(device).float() * (255.0 / 65535.0 if image.dtype == torch.uint16 else 1.0)
            new_w, new_h, left, top = self.decoding.resized_size(image.shape[2], image.shape[1])
            if (new_h, new_w) != tuple(image.shape[1:]):
                image = torch.nn.functional.interpolate(
                    image[None], size=(new_h, new_w), mode=method, align_corners=False, antialias=True
                )[0]
                image = image.round_().clamp_(0, 255)
            out[i] = image[:, top : top + height, left : left + width]
        return out.div_(255.0)

    def _decode_one(self, raw: torch.Tensor, i: int, mode: Any, decode: Callable[..., torch.Tensor]) -> torch.Tensor:
        try:
            return decode(raw, mode=mode)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "not an image"
            raise SubclassbenchError(
                f"cannot decode image {self.where[i]}: {reason}; remove or replace the corrupt file"
            ) from None


@dataclass
class FileImageSet(ImageSet):
    """Encoded image files decoded lazily, batch by batch (image folders, ImageNet)."""

    decodes = True

    paths: list[Path]
    labels: np.ndarray
    ids: list[str]
    image_shape: tuple[int, int, int]
    _hashes: list[str] | None = field(default=None, repr=False)
    resize: int | None = None
    interpolation: str = "bilinear"
    decoder: str = "pil"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.image_shape

    @property
    def decoding(self) -> Decoding:
        return Decoding(self.image_shape, self.resize, self.interpolation, self.decoder)

    def with_decoding(self, decoding: Decoding) -> FileImageSet:
        return dataclasses.replace(
            self,
            image_shape=decoding.image_shape,
            resize=decoding.resize,
            interpolation=decoding.interpolation,
            decoder=decoding.decoder,
        )

    def load(self, index: np.ndarray) -> torch.Tensor | EncodedBatch:
        decoding = self.decoding
        if decoding.decoder != "pil":
            where = [str(self.paths[i]) for i in index]
            try:
                return EncodedBatch([self.paths[i].read_bytes() for i in index], where, decoding)
            except OSError as exc:
                raise SubclassbenchError(f"cannot read image {exc.filename}: {exc.strerror}") from None
        out = torch.empty((len(index), *self.image_shape), dtype=torch.float32)
        for row, i in enumerate(index):
            out[row] = decode_image(self.paths[i], decoding, str(self.paths[i]))
        return out

    def content_hashes(self) -> list[str]:
        if self._hashes is None:
            self._hashes = sha256_files(self.paths)
        return self._hashes

    def subset(self, index: np.ndarray) -> FileImageSet:
        hashes = None if self._hashes is None else [self._hashes[i] for i in index]
        return FileImageSet(
            paths=[self.paths[i] for i in index],
            labels=self.labels[index],
            ids=[self.ids[i] for i in index],
            image_shape=self.image_shape,
            _hashes=hashes,
            resize=self.resize,
            interpolation=self.interpolation,
            decoder=self.decoder,
        )


# --------------------------------------------------------------------------- digits


def load_sklearn_digits() -> ArrayImageSet:
    """scikit-learn's 1,797 8×8 digits; pixel values 0..16, ids are row indices."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # integers 0..16 stored as float64
    return ArrayImageSet(
        array=images,
        labels=digits.target.astype(np.int64),
        ids=[str(i) for i in range(len(images))],
        scale=1.0 / 16.0,
        channels_last=False,
    )


# --------------------------------------------------------------------------- synthetic


SYNTHETIC_LIMITS = {  # integer parameters and their allowed ranges
    "superclasses": (1, 1000),
    "subclasses_per_superclass": (2, 1000),
    "dim": (1, 100_000),
    "train_per_subclass": (1, 1_000_000),
    "test_per_subclass": (1, 1_000_000),
    "seed": (0, 2**32 - 1),
}
SYNTHETIC_MAX_VALUES = 200_000_000  # samples × dim: about 800 MB of float32


def check_synthetic_params(params: Any) -> None:
    """The generator's parameters: integers in range, finite separations, a bounded total size."""
    if not isinstance(params, dict):
        raise SubclassbenchError("data.params of a synthetic_hierarchy task must be a mapping")
    for key, (low, high) in SYNTHETIC_LIMITS.items():
        value = params.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SubclassbenchError(f"data.params.{key} must be an integer in [{low}, {high}], got {value!r}")
    for key in ("superclass_separation", "subclass_separation", "noise"):
        value = params.get(key, 1.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
            raise SubclassbenchError(f"data.params.{key} must be a finite number ≥ 0, got {value!r}")
    per_class = params["train_per_subclass"] + params["test_per_subclass"]
    total = params["superclasses"] * params["subclasses_per_superclass"] * per_class * params["dim"]
    if total > SYNTHETIC_MAX_VALUES:
        raise SubclassbenchError(f"data.params describe {total:,} values (limit {SYNTHETIC_MAX_VALUES:,}); shrink them")


def generate_synthetic_hierarchy(params: dict[str, Any]) -> tuple[ArrayImageSet, np.ndarray]:
    """A hierarchical Gaussian mixture (the simplified setting of Yang et al. 2023).

    Superclass centres are drawn with scale ``superclass_separation``; each
    subclass centre is its superclass centre plus an offset of norm-scale
    ``subclass_separation``; samples add isotropic noise of std ``noise`` per coordinate. Returns
    the samples (labels are global subclass ids ``0..S·K-1``) and the split
    name of every sample (``train`` or ``test``).
    """
    check_synthetic_params(params)
    n_super = int(params["superclasses"])
    n_sub = int(params["subclasses_per_superclass"])
    dim = int(params["dim"])
    n_train = int(params["train_per_subclass"])
    n_test = int(params["test_per_subclass"])
    rng = np.random.RandomState(int(params["seed"]))
    # Centres are scaled by 1/sqrt(dim) so a separation reads as a distance between
    # centres, while noise is unit variance per coordinate (std 1 along any direction).
    super_centres = rng.randn(n_super, dim) * float(params["superclass_separation"]) / np.sqrt(dim)
    sub_offsets = rng.randn(n_super, n_sub, dim) * float(params["subclass_separation"]) / np.sqrt(dim)
    noise = float(params.get("noise", 1.0))
    samples: list[np.ndarray] = []
    labels: list[int] = []
    splits: list[str] = []
    ids: list[str] = []
    for s in range(n_super):
        for k in range(n_sub):
            centre = super_centres[s] + sub_offsets[s, k]
            label = s * n_sub + k
            for split, count in (("train", n_train), ("test", n_test)):
                points = centre + rng.randn(count, dim) * noise
                samples.append(points)
                labels.extend([label] * count)
                splits.extend([split] * count)
                ids.extend(f"{split}/{label}/{i}" for i in range(count))
    array = np.concatenate(samples).astype(np.float32)
    images = ArrayImageSet(array=array, labels=np.asarray(labels, dtype=np.int64), ids=ids, channels_last=False)
    return images, np.asarray(splits)


# --------------------------------------------------------------------------- image classification


def _no_data_message(task_name: str, config: dict[str, Any]) -> str:
    hub = config.get("hf_dataset", {}).get("path")
    hub_hint = f", or run online to fetch the Hugging Face dataset '{hub}'" if hub else ""
    return (
        f"task '{task_name}' needs its images: pass --data PATH to an .npz file with 'images' "
        f"(N×H×W×3 uint8) and 'labels', a folder of such files named *_<split>.npz, an "
        f"image-folder tree (<split>/<class name>/<image>), or a dataset saved with "
        f"datasets.save_to_disk{hub_hint}"
    )


def load_image_classification(
    task_name: str,
    config: dict[str, Any],
    source_split: str,
    data_path: str | Path | None,
    primary: bool = True,
) -> ImageSet:
    """Resolve ``--data`` (or the hub) into the images of one source split.

    A single file or a flat image folder holds one split: it serves the
    primary (evaluated) split, and another split only when its name ends with
    that split's name (``cifar10_train.npz``), so test images are never
    silently reused as training images.
    """
    if data_path is None:
        return _load_hf_hub(task_name, config, source_split)
    path = Path(data_path).expanduser()
    if not path.exists():
        raise SubclassbenchError(f"data path {path} does not exist; " + _no_data_message(task_name, config))
    if path.is_file():
        if path.suffix != ".npz":
            raise SubclassbenchError(f"unsupported data file {path}: " + _no_data_message(task_name, config))
        if not primary and not path.stem.endswith(source_split):
            raise DataMissingError(_one_split_message(path, source_split))
        return _load_npz(path, source_split, config)
    npz = sorted(path.glob(f"*{source_split}.npz"))
    if npz:
        tree_file(path, npz[0], "data file")
        return _load_npz(npz[0], source_split, config)
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return _load_hf_disk(path, config, source_split, primary)
    if (path / source_split).is_dir():
        return _load_image_folder(path / source_split, config, source_split)
    if any(p.is_dir() for p in path.iterdir()):
        if not primary:
            raise DataMissingError(_one_split_message(path, source_split))
        return _load_image_folder(path, config, source_split)
    raise DataMissingError(f"found no '{source_split}' data under {path}; " + _no_data_message(task_name, config))


def _one_split_message(path: Path, source_split: str) -> str:
    return (
        f"{path} holds a single split, so it cannot also serve the '{source_split}' split; pass a folder "
        f"with *_{source_split}.npz (or {source_split}/<class>/<image>) beside the other splits"
    )


def _check_images(images: np.ndarray, where: str, config: dict[str, Any]) -> None:
    expected = tuple(config["image_shape"])  # C, H, W
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[3] != expected[0]:
        raise SubclassbenchError(
            f"{where}: 'images' must be N×H×W×{expected[0]} uint8, got "
            f"{images.dtype} {tuple(images.shape)}; convert the file to that layout"
        )


def _load_npz(path: Path, source_split: str, config: dict[str, Any]) -> ArrayImageSet:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data or "labels" not in data:
                raise SubclassbenchError(
                    f"{path} must hold arrays 'images' and 'labels' (has {sorted(data.files)}); "
                    "re-save it with np.savez(path, images=..., labels=...)"
                )
            images = data["images"]
            raw_labels = data["labels"]
            files = data["source_files"] if "source_files" in data else None
    except SubclassbenchError:
        raise
    except Exception as exc:  # truncated or foreign files raise zipfile, EOF, OS and value errors
        reason = "it holds pickled objects, which are never loaded" if "pickle" in str(exc) else first_line(exc)
        raise SubclassbenchError(f"cannot read {path}: {reason}; save a plain .npz of numeric arrays") from None
    if not all(isinstance(a, np.ndarray) for a in (images, raw_labels, *([] if files is None else [files]))):
        raise SubclassbenchError(f"{path} holds members that are not .npy arrays; save it with np.savez")
    _check_images(images, str(path), config)
    labels = integer_labels(raw_labels, str(path))
    if len(labels) != len(images):
        raise SubclassbenchError(f"{path}: {len(images)} images but {len(labels)} labels; fix the file")
    if files is not None and (files.ndim != 1 or len(files) != len(images)):
        raise SubclassbenchError(f"{path}: 'source_files' must list one name per image; fix the file")
    ids = [str(f) for f in files] if files is not None else [f"{source_split}/{i:06d}" for i in range(len(images))]
    return ArrayImageSet(array=images, labels=labels, ids=ids, scale=1.0 / 255.0)


def integer_labels(raw: np.ndarray, where: str) -> np.ndarray:
    """Labels as a 1-D int64 array; other shapes, and floats that are not whole numbers, are errors."""
    if raw.ndim != 1:
        raise SubclassbenchError(f"{where}: labels must be a 1-D array, got shape {tuple(raw.shape)}; flatten them")
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "f" and np.isfinite(raw).all() and (raw == np.round(raw)).all():
        return raw.astype(np.int64)  # whole numbers stored as floats
    raise SubclassbenchError(f"{where}: labels must be integers, got {raw.dtype} values; store integer class ids")


def _load_image_folder(root: Path, config: dict[str, Any], source_split: str) -> FileImageSet:
    """``root/<class name>/<image>``; class names map to label ids via the task."""
    names = list(config.get("class_names", []))
    paths: list[Path] = []
    labels: list[int] = []
    folders = []
    for folder in (p for p in root.iterdir() if p.is_dir()):
        inside(root, folder, "class folder")  # a linked class folder must stay in the tree
        if folder.name in names:
            folders.append((names.index(folder.name), folder))
        elif folder.name.isdigit():
            folders.append((int(folder.name), folder))
        else:
            raise SubclassbenchError(
                f"image folder {folder} is not a class of this task (expected one of "
                f"{', '.join(names)} or a numeric label); rename or remove it"
            )
    for label, folder in sorted(folders):  # label order, so every layout lists samples alike
        # Every image-named entry is a regular file in the tree: never skipped (a sample silently lost), never
        # a FIFO (a read that blocks), never a link to a file elsewhere on the machine.
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for f in files:
            tree_file(root, f, "image")
        if not files:
            raise SubclassbenchError(f"class folder {folder} holds no images; add its images or remove the folder")
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise SubclassbenchError(f"no images found under {root}; expected <class name>/<image> files")
    ids = [str(p.relative_to(root.parent)) for p in paths]
    return FileImageSet(
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        ids=ids,
        image_shape=tuple(config["image_shape"]),
    )


def _hf_to_arrays(dataset: Any, config: dict[str, Any], source_split: str) -> ArrayImageSet:
    hf = config.get("hf_dataset", {})
    image_col = hf.get("image_column", "img")
    label_col = hf.get("label_column", "label")
    missing = [c for c in (image_col, label_col) if c not in dataset.column_names]
    if missing:
        raise SubclassbenchError(
            f"Hugging Face dataset lacks columns {missing} (has {dataset.column_names}); "
            "set data.hf_dataset.image_column/label_column in the task file"
        )
    channels = config["image_shape"][0]
    mode = "RGB" if channels == 3 else "L"
    try:
        images = np.stack([np.asarray(im.convert(mode), dtype=np.uint8) for im in dataset[image_col]])
    except (AttributeError, TypeError, ValueError, OSError) as exc:  # a column of something other than images
        raise SubclassbenchError(
            f"column '{image_col}' of the Hugging Face dataset does not hold images of one size "
            f"({first_line(exc, 80)}); set data.hf_dataset.image_column in the task file"
        ) from None
    if images.ndim == 3:
        images = images[..., None]
    try:
        raw_labels = np.asarray(dataset[label_col])
    except (TypeError, ValueError) as exc:
        reason = first_line(exc, 80)
        raise SubclassbenchError(f"label column '{label_col}' is not a list of integers ({reason})") from None
    labels = integer_labels(raw_labels, "Hugging Face dataset")
    _check_images(images, "Hugging Face dataset", config)
    ids = [f"{source_split}/{i:06d}" for i in range(len(images))]
    return ArrayImageSet(array=images, labels=labels, ids=ids, scale=1.0 / 255.0)


def _load_hf_disk(path: Path, config: dict[str, Any], source_split: str, primary: bool = True) -> ArrayImageSet:
    import datasets

    loaded = load_saved_dataset(path)
    if isinstance(loaded, datasets.DatasetDict):
        if source_split not in loaded:
            raise SubclassbenchError(
                f"saved dataset {path} has splits {list(loaded)} but not '{source_split}'; save that split"
            )
        loaded = loaded[source_split]
    elif not primary:  # one unnamed split serves only the evaluated split, never also as training data
        raise DataMissingError(_one_split_message(path, source_split))
    return _hf_to_arrays(loaded, config, source_split)


def load_saved_dataset(path: Path) -> Any:
    """``datasets.load_from_disk``, with a damaged or foreign folder as a one-line error."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types for damaged folders
        raise SubclassbenchError(
            f"cannot read the saved Hugging Face dataset {path} ({first_line(exc, 100)}); save it again with "
            "datasets.save_to_disk"
        ) from None


def _load_hf_hub(task_name: str, config: dict[str, Any], source_split: str) -> ArrayImageSet:
    hub = config.get("hf_dataset")
    if not hub or not hub_reachable():  # offline: say what to do now, not after the hub client's retries
        raise DataMissingError(_no_data_message(task_name, config))
    try:
        import datasets

        dataset = datasets.load_dataset(hub["path"], hub.get("name"), split=source_split)
    except Exception as exc:  # the hub raises many types when offline
        first = first_line(exc, 120)
        raise SubclassbenchError(f"{first}; " + _no_data_message(task_name, config)) from None
    return _hf_to_arrays(dataset, config, source_split)


# --------------------------------------------------------------------------- the data-source registry


class SourceTask(Protocol):
    """What the built-in sources read of a task: :class:`~subclassbench.tasks.task.Task` has both."""

    @property
    def name(self) -> str: ...

    @property
    def data(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DataSource:
    """A task file's ``data.source``: how its splits become samples, and what that needs."""

    name: str
    # (task, source split, --data path, primary split?, decoding override) → (samples, where they came from).
    # The task is a tasks.task.Task; typed Any so that this module stays below the module that defines it.
    load: Callable[[Any, str, str | Path | None, bool, Decoding | None], tuple[ImageSet, str]]
    needs_data_path: bool = False  # True: the images are not shipped (``--data`` or a hub download)
    single_pool: bool = False  # True: every split's ids index one pool of samples (so splits may overlap)


def _digits(_task: SourceTask, _split: str, _path: str | Path | None, _primary: bool, _dec: Decoding | None) -> Any:
    return load_sklearn_digits(), "sklearn.datasets.load_digits"


def _synthetic(task: SourceTask, split: str, _path: str | Path | None, _primary: bool, _dec: Decoding | None) -> Any:
    images, membership = generate_synthetic_hierarchy(task.data["params"])
    return images.subset(np.flatnonzero(membership == split)), "generated"


def _image_classification(
    task: SourceTask, split: str, path: str | Path | None, primary: bool, _dec: Decoding | None
) -> tuple[ImageSet, str]:
    images = load_image_classification(task.name, task.data, split, path, primary)
    return images, str(path) if path else f"hf:{task.data['hf_dataset']['path']}"


DATA_SOURCES: Registry[DataSource] = Registry("data source", providers=("subclassbench.tasks.imagenet",))
DATA_SOURCES.register("sklearn_digits", DataSource("sklearn_digits", _digits, single_pool=True))
DATA_SOURCES.register("synthetic_hierarchy", DataSource("synthetic_hierarchy", _synthetic))
DATA_SOURCES.register(
    "image_classification", DataSource("image_classification", _image_classification, needs_data_path=True)
)
