"""Per-sample outputs: the sidecar ``<result>.samples.npz`` written beside every result JSON.

It holds, for each evaluation image, what the protocol decided about it —
its true superclass and subclass, every layer's k-means cluster, the Ward
clusters at the layers that headline (committed, best), the probe's
predicted superclass and the reconstructed subclass — and, for every probe
test set (ID, subpopulation shift, each OOD set), the true class and every
layer's prediction; plus the bootstrap replicates of the headline metrics.
That is enough to recompute every headline number without features, and to
pair two results image by image.

The JSON records the sidecar's name and sha256; reading a result checks
both, so a swapped or edited sidecar is refused. The file is a plain zip of
``.npy`` arrays written with fixed timestamps (the same run gives the same
bytes) and read without pickle, within size limits.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from subclassbench.core.files import read_bounded
from subclassbench.core.hashing import sha256_bytes
from subclassbench.errors import SubclassbenchError, first_line

SUFFIX = ".samples.npz"
FORMAT = 1
MAX_BYTES = 2 << 30  # uncompressed; far above any real evaluation (ImageNet val × 50 layers is ~0.3 GB)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: a fixed timestamp keeps the bytes deterministic


def sidecar_name(result_path: Path) -> str:
    """``cifar10-5.json`` → ``cifar10-5.samples.npz`` (always beside the JSON, never elsewhere)."""
    return result_path.name.removesuffix(".json") + SUFFIX


@dataclass
class ProbeSamples:
    """One probe test set: each image's true class and every layer's predicted class (layers × images)."""

    truth: np.ndarray
    pred: np.ndarray


@dataclass
class SampleOutputs:
    layers: list[str]
    superclass: np.ndarray  # (n,) true superclass of each evaluation image
    subclass: np.ndarray  # (n,) true subclass, numbered within its superclass
    kmeans: np.ndarray | None = None  # (L, n) k-means cluster within the image's superclass
    ward_layers: list[str] = field(default_factory=list)
    ward: np.ndarray | None = None  # (W, factors, n) Ward clusters at k·factor, for ward_layers
    superclass_pred: np.ndarray | None = None  # (L, n) the reconstruction probe's superclass
    reconstructed: np.ndarray | None = None  # (L, n) reconstructed subclass (within the predicted one; -1: none)
    head_superclass_pred: np.ndarray | None = None  # (n,) the encoder's own head's superclass (protocol v3)
    head_reconstructed: np.ndarray | None = None  # (L, n) reconstructed subclass within the head's superclass
    probes: dict[str, ProbeSamples] = field(default_factory=dict)  # "id", "shift", "refit", "ood/<name>"
    # Bootstrap values (``bootstrap.py``): the estimate, then the B replicates.
    replicates: dict[str, np.ndarray] = field(default_factory=dict)  # headline metric → (1 + B,)
    layer_replicates: dict[str, np.ndarray] = field(default_factory=dict)  # per-layer metric → (L, 1 + B)

    # ------------------------------------------------------------------ derived per-image outcomes

    def reconstruction_correct(self) -> np.ndarray | None:
        """(L, n) whether each image's subclass was reconstructed (Yang et al.'s accuracy, per image)."""
        if self.superclass_pred is None or self.reconstructed is None:
            return None
        correct: np.ndarray = (self.superclass_pred == self.superclass[None, :]) & (
            self.reconstructed == self.subclass[None, :]
        )
        return correct

    def head_reconstruction_correct(self) -> np.ndarray | None:
        """(L, n) whether each image's subclass was reconstructed through the encoder's own head (Yang et al.'s
        own setting), where the encoder has one."""
        if self.head_superclass_pred is None or self.head_reconstructed is None:
            return None
        correct: np.ndarray = (self.head_superclass_pred == self.superclass)[None, :] & (
            self.head_reconstructed == self.subclass[None, :]
        )
        return correct

    def ward_by_layer(self) -> dict[int, np.ndarray] | None:
        """Layer index → its Ward clusters at k (factor 1), for the layers that keep them; None without Ward."""
        if self.ward is None:
            return None
        return {self.layers.index(name): self.ward[j, 0] for j, name in enumerate(self.ward_layers)}

    def committed_shares(self) -> dict[str, np.ndarray | None]:
        """The committed metrics that are shares of per-image outcomes, each (L, n) or None where the result has
        no such metric: what :func:`~subclassbench.scoring.commitment.crossfit` reads on the halves."""
        right = None if self.superclass_pred is None else self.superclass_pred == self.superclass[None, :]
        return {
            "committed_reconstruction_acc": self.reconstruction_correct(),
            "committed_superclass_acc": right,
            "committed_head_reconstruction_acc": self.head_reconstruction_correct(),
        }

    def probe_correct(self, name: str) -> np.ndarray:
        probe = self.probes[name]
        correct: np.ndarray = probe.pred == probe.truth[None, :]
        return correct

    # ------------------------------------------------------------------ bytes

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "format": np.asarray([FORMAT], dtype=np.int64),
            "superclass": _compact(self.superclass),
            "subclass": _compact(self.subclass),
        }
        for key in ("kmeans", "ward", "superclass_pred", "reconstructed", "head_superclass_pred", "head_reconstructed"):
            value = getattr(self, key)
            if value is not None:
                out[key] = _compact(value)
        for name, probe in self.probes.items():
            out[f"{_member(name)}.truth"] = _compact(probe.truth)
            out[f"{_member(name)}.pred"] = _compact(probe.pred)
        for name, reps in self.replicates.items():
            out[f"replicates.{name}"] = np.asarray(reps, dtype=np.float64)
        for name, reps in self.layer_replicates.items():
            out[f"layer_replicates.{name}"] = np.asarray(reps, dtype=np.float32)
        return out

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key, value in sorted(self.arrays().items()):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                array = io.BytesIO()
                np.lib.format.write_array(array, np.ascontiguousarray(value), allow_pickle=False)
                archive.writestr(info, array.getvalue())
        return buffer.getvalue()

    def record(self, data: bytes, file: str) -> dict[str, Any]:
        """The result JSON's ``samples`` entry."""
        return {
            "file": file,
            "sha256": sha256_bytes(data),
            "format": FORMAT,
            "n": len(self.superclass),
            "layers": list(self.layers),
            "ward_layers": list(self.ward_layers),
            "probes": {name: len(p.truth) for name, p in self.probes.items()},
            "replicates": sorted(self.replicates),
            "layer_replicates": sorted(self.layer_replicates),
        }

    @classmethod
    def read(cls, path: Path, record: dict[str, Any]) -> SampleOutputs:
        """Read and check a sidecar against its JSON record: name, sha256, every array's shape and range."""
        try:  # a regular file within the size any evaluation writes: never a FIFO, a device or a huge file
            data = read_bounded(path, "the per-sample file", MAX_BYTES)
        except SubclassbenchError as exc:
            raise SubclassbenchError(f"{exc}; keep it beside its result JSON or re-run the evaluation") from None
        if sha256_bytes(data) != record["sha256"]:
            raise SubclassbenchError(
                f"{path}: sha256 differs from its result's record; the per-sample file was changed or belongs to "
                "another result: re-run the evaluation"
            )
        try:
            arrays = _load(data)
            return cls._from_arrays(arrays, record)
        except SubclassbenchError as exc:
            raise SubclassbenchError(f"{path}: {exc}; re-run the evaluation") from None

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], record: dict[str, Any]) -> SampleOutputs:
        def optional(key: str, ndim: int) -> np.ndarray | None:
            value = arrays.get(key)
            if value is None:
                return None
            if value.ndim != ndim or not np.issubdtype(value.dtype, np.number):
                raise SubclassbenchError(f"array '{key}' has shape {value.shape} and type {value.dtype}")
            return value

        def get(key: str, ndim: int) -> np.ndarray:
            value = optional(key, ndim)
            if value is None:
                raise SubclassbenchError(f"array '{key}' is missing")
            return value

        fmt = get("format", 1)
        if fmt.tolist() != [FORMAT]:
            raise SubclassbenchError(f"unknown per-sample format {fmt!r}")
        n, layers, ward_layers = int(record["n"]), list(record["layers"]), list(record["ward_layers"])
        out = cls(layers=layers, superclass=get("superclass", 1), subclass=get("subclass", 1))
        _shape(out.superclass, (n,), "superclass")
        _shape(out.subclass, (n,), "subclass")
        for key in ("kmeans", "superclass_pred", "reconstructed", "head_reconstructed"):
            value = optional(key, 2)
            if value is not None:
                _shape(value, (len(layers), n), key)
            setattr(out, key, value)
        out.head_superclass_pred = optional("head_superclass_pred", 1)
        if out.head_superclass_pred is not None:
            _shape(out.head_superclass_pred, (n,), "head_superclass_pred")
        if (out.head_superclass_pred is None) != (out.head_reconstructed is None):
            raise SubclassbenchError("the head's superclass and reconstruction arrays come together or not at all")
        out.ward_layers = ward_layers
        out.ward = get("ward", 3) if ward_layers else optional("ward", 3)
        if out.ward is not None:
            if out.ward.shape[0] != len(ward_layers) or out.ward.shape[2] != n:
                raise SubclassbenchError(f"array 'ward' has shape {out.ward.shape}")
        for name, size in record["probes"].items():
            truth, pred = get(f"{_member(name)}.truth", 1), get(f"{_member(name)}.pred", 2)
            _shape(truth, (int(size),), f"{_member(name)}.truth")
            _shape(pred, (len(layers), int(size)), f"{_member(name)}.pred")
            out.probes[name] = ProbeSamples(truth, pred)
        for name in record["replicates"]:
            reps = get(f"replicates.{name}", 1)
            if not np.isfinite(reps).all():
                raise SubclassbenchError(f"replicates of {name} are not finite")
            out.replicates[name] = reps.astype(np.float64)
        for name in record["layer_replicates"]:
            reps = get(f"layer_replicates.{name}", 2)
            if reps.shape[0] != len(layers) or not np.isfinite(reps).all():
                raise SubclassbenchError(f"per-layer replicates of {name} have shape {reps.shape} or are not finite")
            out.layer_replicates[name] = reps.astype(np.float64)
        return out


def _compact(labels: np.ndarray) -> np.ndarray:
    """Class and cluster ids in the smallest integer type that holds them (the file is mostly these)."""
    labels = np.asarray(labels)
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if labels.size == 0 or (labels.min() >= info.min and labels.max() <= info.max):
            return labels.astype(dtype)
    return labels.astype(np.int64)


def _member(probe: str) -> str:
    """A probe set's array name: ``ood/<set>`` keeps no '/' inside the zip (members are flat)."""
    return "probe." + probe.replace("/", ":")


def _shape(value: np.ndarray, shape: tuple[int, ...], key: str) -> None:
    if value.shape != shape:
        raise SubclassbenchError(f"array '{key}' has shape {value.shape}, its result says {shape}")


def _load(data: bytes) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of a zip, without pickle and within :data:`MAX_BYTES` uncompressed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(m.file_size for m in members) > MAX_BYTES:
                raise SubclassbenchError("the arrays are larger than any evaluation writes")
            names = [m.filename for m in members]
            if len(set(names)) != len(names):  # a zip may hold one name twice: a reader could see the other one
                twice = next(name for name in names if names.count(name) > 1)
                raise SubclassbenchError(f"member '{first_line(twice, 60)}' appears twice")
            out = {}
            for member in members:
                if not member.filename.endswith(".npy") or "/" in member.filename:
                    raise SubclassbenchError(f"unexpected member '{first_line(member.filename, 60)}'")
                with archive.open(member) as handle:
                    out[member.filename.removesuffix(".npy")] = np.lib.format.read_array(handle, allow_pickle=False)
            return out
    except SubclassbenchError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError) as exc:
        raise SubclassbenchError(f"not a readable per-sample file ({first_line(exc, 80)})") from None
