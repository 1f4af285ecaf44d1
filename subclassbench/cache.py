"""A content-addressed cache of pooled per-layer features: the boundary between *extract* and *score*.

An entry's key is the sha256 of everything that determines the features —
weights sha256, encoder spec and switches, preprocessing, image decoding,
layer, pooling, dtype, the split's fingerprint (task definition + manifest of
ids, labels and content hashes) and the feature code version — never a model
name alone, so changed weights or data can never return stale features.

Each entry is ``<root>/<key[:2]>/<key>.npy`` plus ``<key>.json`` (its index
record: shape, sha256 of the array file, the key fields). Both are written to
a temporary name and renamed, the record last; an entry counts only when its
record exists and the array file's sha256 matches it, so a half-written or
damaged file is never read. Concurrent writers of one key write the same
bytes, so the last rename wins harmlessly.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subclassbench.hashing import canonical_json, sha256_file, sha256_text

CACHE_ENV = "SUBCLASSBENCH_CACHE"
STALE_TMP_S = 3600  # temporary files older than this are leftovers of killed writers


def cache_root() -> Path:
    """``$SUBCLASSBENCH_CACHE``, else ``$XDG_CACHE_HOME/subclassbench/features`` (``~/.cache/…``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "subclassbench" / "features"


def feature_key(fields: dict[str, Any]) -> str:
    return sha256_text(canonical_json(fields))


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}


class FeatureCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The array and its record, or None when absent, incomplete or damaged."""
        array_path, record_path = self._paths(key)
        try:
            record = json.loads(record_path.read_text())
            if sha256_file(array_path) != record["sha256"]:
                return None
            array = np.load(array_path, allow_pickle=False)
        except (OSError, ValueError, KeyError):
            return None
        if list(array.shape) != record["shape"]:
            return None
        return array, record

    def put(self, key: str, array: np.ndarray, fields: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        array_path, record_path = self._paths(key)
        array_path.parent.mkdir(parents=True, exist_ok=True)
        suffix = f".{uuid.uuid4().hex}.tmp"  # unique across processes and hosts sharing the cache
        tmp_array = array_path.with_name(array_path.name + suffix)
        with tmp_array.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        tmp_array.replace(array_path)
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
        tmp_record = record_path.with_name(record_path.name + suffix)
        tmp_record.write_text(json.dumps(record, indent=1))
        tmp_record.replace(record_path)

    def entries(self) -> list[dict[str, Any]]:
        out = []
        if not self.root.is_dir():
            return out
        for record_path in sorted(self.root.glob("??/*.json")):
            try:
                out.append(json.loads(record_path.read_text()))
            except (OSError, ValueError):
                continue
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
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def prune(self, older_than_s: float | None = None, spec: str | None = None, everything: bool = False) -> int:
        """Remove matching entries and any leftover temporary files; returns the number of entries removed."""
        removed = 0
        now = time.time()
        for record in self.entries():
            old = older_than_s is not None and now - record.get("created", 0) > older_than_s
            same_spec = spec is not None and record.get("fields", {}).get("encoder", {}).get("spec") == spec
            if everything or old or same_spec:
                self.remove(record["key"])
                removed += 1
        if self.root.is_dir():
            for tmp in self.root.glob("??/*.tmp"):
                try:
                    if now - tmp.stat().st_mtime > STALE_TMP_S:  # younger ones may belong to a running writer
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue
        return removed
