"""A content-addressed cache of pooled per-layer features: the boundary between *extract* and *score*.

An entry's key is the sha256 of everything that determines the features —
weights sha256, encoder spec and switches, preprocessing, image decoding,
layer, pooling, dtype, the split's fingerprint (task definition + manifest of
ids, labels and content hashes) and the feature code version — never a model
name alone, so changed weights or data can never return stale features.

Each entry is ``<root>/<key[:2]>/<key>.npy`` plus ``<key>.json`` (its index
record: shape, sha256 of the array file, the key fields). Both are written
atomically (:mod:`subclassbench.core.files`), the record last; an entry counts only
when its record exists and the array file's sha256 matches it, so a
half-written or damaged file is never read. Concurrent writers of one key
write the same bytes, so the last rename wins harmlessly.

Extraction streams rows into an entry batch by batch (:class:`EntryWriter`),
and readers map an entry's file (:meth:`FeatureCache.locate`) rather than load
it, so neither side ever holds a whole split's features of every layer.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from subclassbench.core.cache_dir import cache_root
from subclassbench.core.files import (
    TMP_PATTERN,
    AtomicStream,
    atomic_path,
    atomic_write,
    check_writable_folder,
    locked,
    read_bounded,
)
from subclassbench.core.hashing import canonical_json, sha256_file, sha256_text
from subclassbench.errors import SubclassbenchError

STALE_TMP_S = 3600  # temporary files older than this are leftovers of killed writers
MAX_RECORD_BYTES = 1 << 20  # a record holds its key's fields: a few kilobytes; anything larger is not ours



def feature_key(fields: dict[str, Any]) -> str:
    return sha256_text(canonical_json(fields))


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}


class FeatureCache:
    def __init__(self, root: Path | str | None = None) -> None:
        if root is not None and not str(root).strip():
            raise SubclassbenchError("--cache-dir is empty; pass a folder (or leave it out for the default cache)")
        self.root = Path(root) if root is not None else cache_root()

    def _paths(self, key: str) -> tuple[Path, Path]:  # callers pass keys checked by check_key
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def check_writable(self) -> None:
        try:
            check_writable_folder(self.root, "the feature cache")
        except SubclassbenchError as exc:
            raise SubclassbenchError(f"{exc}; or pass --cache-dir DIR or --no-cache") from None

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The array (loaded) and its record, or None when absent, incomplete or damaged."""
        found = self.locate(key)
        if found is None:
            return None
        try:
            return np.load(found[0], allow_pickle=False), found[1]
        except (OSError, ValueError):
            return None

    def locate(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        """The entry's checked array file and its record, or None when absent, incomplete or damaged.

        The file's sha256 is checked against the record and its header against the record's shape
        and float32 dtype, so a caller may map it (``np.load(path, mmap_mode="r")``) and read rows
        as needed instead of loading it whole."""
        array_path, record_path = self._paths(check_key(key))
        if not (_plain_file(record_path) and _plain_file(array_path)):
            return None  # a FIFO would block the read, a link could lead anywhere: never ours, a miss
        try:
            record = json.loads(read_bounded(record_path, "cache record", MAX_RECORD_BYTES))
            if sha256_file(array_path) != record["sha256"]:
                return None
            array = np.load(array_path, mmap_mode="r", allow_pickle=False)
            shape, dtype = list(array.shape), array.dtype
            del array  # only the header was read
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SubclassbenchError):
            return None  # an absent, damaged or foreign entry is a miss, never an error
        if (
            not isinstance(record, dict)
            or shape != record.get("shape")
            or dtype != np.float32
            or not _trusted(record, key)
        ):
            return None
        return array_path, record

    def writer(self, key: str, n_rows: int) -> EntryWriter:
        """Stream an ``n_rows``-row float32 entry into the cache batch by batch (see :class:`EntryWriter`)."""
        return EntryWriter(self, check_key(key), n_rows)

    def put(self, key: str, array: np.ndarray, fields: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        array_path, record_path = self._paths(check_key(key))
        try:
            with atomic_path(array_path) as tmp_array, tmp_array.open("wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            record = {
                "key": key,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "bytes": array_path.stat().st_size,
                "sha256": sha256_file(array_path),
                "created": time.time(),
                "fields": fields,
                **(extra or {}),
            }
            atomic_write(record_path, json.dumps(record, indent=1))  # the record last: it makes the entry count
        except OSError as exc:
            raise self._write_error(exc) from None

    def _write_error(self, exc: OSError) -> SubclassbenchError:
        return SubclassbenchError(
            f"cannot write to the feature cache {self.root} ({exc.strerror}); pass --cache-dir DIR, "
            "set $SUBCLASSBENCH_CACHE to a writable folder, or use --no-cache"
        )

    def entries(self) -> list[CacheEntry]:
        """Every well-formed entry record; a malformed record is skipped with a warning, never trusted."""
        out: list[CacheEntry] = []
        if not self.root.is_dir():
            return out
        for record_path in sorted(self.root.glob("??/*.json")):
            if not _plain_file(record_path):  # a FIFO, a folder or a link: not ours
                continue
            try:
                record = json.loads(read_bounded(record_path, "cache record", MAX_RECORD_BYTES))
                out.append(CacheEntry.from_record(record, record_path))
            except Exception as exc:  # a record is data from disk: anything malformed is skipped, never trusted
                warnings.warn(f"skipping malformed cache record {record_path}: {exc}", stacklevel=2)
        return out

    def usage(self) -> tuple[int, int]:
        """(entries, bytes on disk including records and stray temporary files)."""
        if not self.root.is_dir():
            return 0, 0
        size = 0
        for path in self.root.glob("??/*"):
            try:
                size += path.stat().st_size
            except FileNotFoundError:  # renamed or pruned meanwhile by another process
                continue
        return len(list(self.root.glob("??/*.json"))), size

    def remove(self, key: str) -> None:
        """Delete an entry's two files, never anything that resolves outside the cache (a linked shard folder)."""
        root = self.root.resolve()
        for path in self._paths(check_key(key)):
            if path.parent.is_symlink() or path.is_symlink() or root not in path.resolve().parents:
                continue
            path.unlink(missing_ok=True)

    def prune(self, older_than_s: float | None = None, spec: str | None = None, everything: bool = False) -> int:
        """Remove matching entries and any leftover temporary files; returns the number of entries removed.

        Only files named by a well-formed key under the cache root are ever removed.
        """
        removed = 0
        now = time.time()
        with locked(self.root):
            for entry in self.entries():
                old = older_than_s is not None and now - entry.created > older_than_s
                if everything or old or (spec is not None and entry.spec == spec):
                    self.remove(entry.key)
                    removed += 1
            leftovers = [p for p in self.root.glob("??/*") if _our_temporary(p.name)]
            leftovers += [p for p in self.root.glob("??/.*") if _our_temporary(p.name)]
            for tmp in leftovers:
                try:
                    if now - tmp.stat().st_mtime > STALE_TMP_S:  # younger ones may belong to a running writer
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue
        return removed


class EntryWriter:
    """One cache entry written row block by row block: a float32 ``.npy`` file streamed to a temporary
    name, hashed as it is written, and made an entry by :meth:`commit` (rename, then the record).

    The file is byte for byte what ``np.save`` writes for the whole matrix. Used as a context manager,
    an entry that was not committed (an error, a killed run) leaves only its temporary file removed.
    """

    def __init__(self, cache: FeatureCache, key: str, n_rows: int) -> None:
        self.cache, self.key, self.n_rows = cache, key, n_rows
        self.array_path, self.record_path = cache._paths(key)
        self.rows = 0
        self.width: int | None = None
        self._hash = hashlib.sha256()
        try:
            self._file = AtomicStream(self.array_path)
        except OSError as exc:
            raise cache._write_error(exc) from None

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.abort()  # a no-op after commit

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise self.cache._write_error(exc) from None
        self._hash.update(data)

    def append(self, block: np.ndarray) -> None:
        """The next rows (``B × D``, cast to float32)."""
        block = np.ascontiguousarray(block, dtype="<f4")
        if block.ndim != 2:
            raise ValueError(f"a feature block must be 2-D, got shape {block.shape}")
        if self.width is None:
            self.width = int(block.shape[1])
            header = {"descr": "<f4", "fortran_order": False, "shape": (self.n_rows, self.width)}
            buffer = io.BytesIO()
            np.lib.format.write_array_header_1_0(buffer, header)
            self._write(buffer.getvalue())
        if block.shape[1] != self.width or self.rows + len(block) > self.n_rows:
            raise ValueError(f"block of shape {block.shape} does not fit a {self.n_rows} × {self.width} entry")
        self._write(block.data.cast("B"))  # the array's own buffer, as bytes
        self.rows += len(block)

    def commit(self, fields: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
        """Make the entry count: every row written, file fsynced and renamed, then its record."""
        if self.rows != self.n_rows or self.width is None:
            self.abort()
            raise ValueError(f"entry has {self.rows} of its {self.n_rows} rows")
        try:
            self._file.finish()
            record = {
                "key": self.key,
                "shape": [self.n_rows, self.width],
                "dtype": "float32",
                "bytes": self.array_path.stat().st_size,
                "sha256": self._hash.hexdigest(),
                "created": time.time(),
                "fields": fields,
                **(extra or {}),
            }
            atomic_write(self.record_path, json.dumps(record, indent=1))
        except OSError as exc:
            self.abort()
            raise self.cache._write_error(exc) from None
        return self.array_path

    def abort(self) -> None:
        """Close and remove the temporary file, if it is still there."""
        self._file.discard()


KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
POOLING_PATTERN = re.compile(r"global_avg_pool|none|flatten|mean_tokens_excl_\d{1,3}_prefix")


def _our_temporary(name: str) -> bool:
    """A temporary file this cache wrote: ``.<uuid>.tmp``, or ``<key>.npy|json.<uuid>.tmp`` from earlier versions."""
    return bool(TMP_PATTERN.fullmatch(name) or re.fullmatch(r"[0-9a-f]{64}\.(npy|json)\.[0-9a-f]{32}\.tmp", name))


def _plain_file(path: Path) -> bool:
    """A regular file itself, not a link to one (``lstat``): the cache never writes links or special files."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _trusted(record: dict[str, Any], key: str) -> bool:
    """A record is used only when it describes its own key: fields that hash to it, a known pooling."""
    return (
        record.get("key") == key
        and isinstance(record.get("fields"), dict)
        and feature_key(record["fields"]) == key
        and isinstance(record.get("pooling"), str)
        and POOLING_PATTERN.fullmatch(record["pooling"]) is not None
    )


def check_key(key: object) -> str:
    """A cache key is a sha256 hex digest: anything else could name a path outside the cache."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"not a cache key: {key!r}")
    return key


@dataclass(frozen=True)
class CacheEntry:
    """One entry's record, checked: its key is a digest and matches the file it was read from."""

    key: str
    shape: tuple[int, ...]
    bytes: int
    created: float
    spec: str | None
    layer: str | None
    rows: tuple[int, int] | None
    task: str | None
    split: str | None

    @classmethod
    def from_record(cls, record: dict[str, Any], path: Path) -> CacheEntry:
        key = check_key(record["key"])
        if path.stem != key or path.parent.name != key[:2]:
            raise ValueError(f"key {key[:12]}… does not match the record's file name")
        fields = record.get("fields") or {}
        rows = fields.get("rows")
        return cls(
            key=key,
            shape=tuple(int(n) for n in record["shape"]),
            bytes=int(record.get("bytes", 0)),
            created=float(record.get("created", 0.0)),
            spec=(fields.get("encoder") or {}).get("spec"),
            layer=fields.get("layer"),
            rows=None if rows is None else (int(rows[0]), int(rows[1])),
            task=record.get("task"),
            split=record.get("split_name"),
        )
