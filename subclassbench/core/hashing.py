"""Canonical hashing: the same content always gives the same sha256."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

from subclassbench.core.cache_dir import cache_root


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal objects hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(obj: Any) -> str:
    return sha256_text(canonical_json(obj))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- memoised file hashes

HASH_INDEX = "file-hashes.sqlite"
HASH_THREADS = 8  # hashlib releases the GIL on large buffers: threads hash files in parallel


def sha256_files(paths: list[Path], index: Path | None = None) -> list[str]:
    """sha256 of every file, in order, computed in parallel and memoised in a small SQLite index.

    An entry is keyed by (resolved path, size, mtime in ns, inode): a re-run does not re-read an
    unchanged file, and any rewrite that changes size, mtime or inode hashes again (the rule make
    and rsync trust). The index lives in the feature cache folder (``index`` overrides it); an
    unreadable or damaged index is set aside and the hashes are computed, never guessed.
    """
    stats = [os.stat(p) for p in paths]
    keys = [(str(Path(p).resolve()), s.st_size, s.st_mtime_ns, s.st_ino) for p, s in zip(paths, stats, strict=True)]
    known = _read_index(index, keys)
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        with ThreadPoolExecutor(max_workers=min(HASH_THREADS, len(missing))) as pool:
            fresh = list(pool.map(sha256_file, [paths[i] for i in missing]))
        computed = {keys[i]: h for i, h in zip(missing, fresh, strict=True)}
        _write_index(index, computed)
        known.update(computed)
    return [known[k] for k in keys]


def _index_path(index: Path | None) -> Path:
    if index is not None:
        return index
    return cache_root() / HASH_INDEX


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30)
    connection.execute(
        "CREATE TABLE IF NOT EXISTS hashes (path TEXT, size INTEGER, mtime_ns INTEGER, inode INTEGER, sha256 TEXT, "
        "PRIMARY KEY (path, size, mtime_ns, inode))"
    )
    return connection


IndexKey = tuple[str, int, int, int]


def _read_index(index: Path | None, keys: list[IndexKey]) -> dict[IndexKey, str]:
    path = _index_path(index)
    if not path.is_file():
        return {}
    try:
        with closing(_connect(path)) as connection:
            # Only the files asked for, looked up through the primary key: an index shared by many
            # datasets is never read whole.
            connection.execute("CREATE TEMP TABLE wanted (path TEXT, size INTEGER, mtime_ns INTEGER, inode INTEGER)")
            connection.executemany("INSERT INTO wanted VALUES (?, ?, ?, ?)", keys)
            rows = connection.execute(
                "SELECT h.path, h.size, h.mtime_ns, h.inode, h.sha256 FROM wanted w "
                "JOIN hashes h ON h.path = w.path AND h.size = w.size AND h.mtime_ns = w.mtime_ns "
                "AND h.inode = w.inode"
            ).fetchall()
    except sqlite3.Error:
        return {}  # damaged or foreign: hash everything again (and _write_index replaces it)
    return {(p, s, m, i): h for p, s, m, i, h in rows if isinstance(h, str) and _HEX64.fullmatch(h)}


def _write_index(index: Path | None, computed: dict[IndexKey, str]) -> None:
    path = _index_path(index)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            try:
                with closing(_connect(path)) as connection, connection:
                    connection.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
                                           [(*k, h) for k, h in computed.items()])  # fmt: skip
                return
            except sqlite3.DatabaseError:
                if attempt == 0 and path.is_file() and not path.is_symlink():
                    path.unlink()  # not a database of ours: start a new one
                    continue
                raise
    except (OSError, sqlite3.Error):
        return  # a read-only or damaged location costs a re-hash next time, never a failure


_HEX64 = re.compile(r"[0-9a-f]{64}")
