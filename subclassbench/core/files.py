"""Writing files safely: atomic replacement and inter-process locks.

Every file subclassbench writes goes through :func:`atomic_write` (bytes or
text) or :func:`atomic_path` (for writers that need a path, such as
``np.save`` or ``safetensors.save_file``): the data goes to a uniquely named
temporary file in the target's own folder, is flushed and fsynced, and is
renamed over the target. A reader therefore sees the old file or the new one,
never half of one, and two writers of one file never share a temporary name.

:func:`locked` serialises whole operations on a folder (a submission, the
leaderboard, the feature cache's prune, a training run) across processes with
the ``filelock`` library.
"""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from subclassbench.errors import SubclassbenchError

TMP_SUFFIX = ".tmp"
# Temporary files are ``.<32 hex digits>.tmp``: short (a long target name still fits the file-name limit)
# and recognisable, so cleanup removes only files subclassbench wrote.
TMP_PATTERN = re.compile(r"\.[0-9a-f]{32}" + re.escape(TMP_SUFFIX))
LOCK_TIMEOUT_S = 600.0


def temporary_name(path: Path) -> Path:
    """A unique sibling of ``path``: ``.<uuid>.tmp`` (hidden, and unique across processes and hosts)."""
    return path.with_name(f".{uuid.uuid4().hex}{TMP_SUFFIX}")


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # the original error matters more than a failed cleanup
        pass


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SubclassbenchError(f"cannot create folder {target.parent}: {exc.strerror}; choose another path") from None
    tmp = temporary_name(target)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        raise SubclassbenchError(f"cannot write {target}: {exc.strerror or exc}; choose a writable path") from None
    except BaseException:
        _discard(tmp)
        raise


class AtomicStream:
    """A file written piece by piece under a temporary name (:func:`temporary_name`), which becomes
    ``path`` only through :meth:`finish` (flushed, fsynced, renamed); :meth:`discard` removes it. For
    writers too large to stage whole, such as a feature cache entry streamed batch by batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(path)
        self.handle = self.tmp.open("xb")

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)

    def finish(self, mode: int = 0o644) -> Path:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.chmod(self.tmp, mode)
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        _discard(self.tmp)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns the path."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_many({Path(path): payload})[0]


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder``: a hidden sibling, so the folder itself stays exactly what was written."""
    path = Path(folder).resolve()  # one lock per folder, however it is named (links, relative paths)
    return path.parent / f".{path.name}.lock"


@contextmanager
def locked(folder: str | Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (through :func:`lock_path`) for the duration."""
    from filelock import FileLock, Timeout

    root = Path(folder)
    lock_file = lock_path(root)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SubclassbenchError(f"cannot create folder {lock_file.parent}: {exc.strerror}") from None
    lock = FileLock(str(lock_file), timeout=timeout_s)
    try:
        with lock:
            yield
    except Timeout:
        raise SubclassbenchError(
            f"{root} is locked by another subclassbench process; wait for it or remove {lock_file}"
        ) from None


def check_file_name(path: Path, what: str = "--out") -> None:
    """Fail before any work when a file name is longer than the file system allows."""
    try:
        limit = os.pathconf(path.parent if path.parent.exists() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(path.name.encode()) > limit:
        raise SubclassbenchError(f"{what} {path}: the file name is longer than {limit} bytes; choose a shorter name")


def check_writable_folder(folder: str | Path, what: str = "--out") -> None:
    """Fail before any work when ``folder`` (or its nearest existing parent) cannot be written."""
    path = Path(folder).expanduser().absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise SubclassbenchError(f"{what} {folder}: {probe} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SubclassbenchError(f"{what} {folder}: {probe} is not writable; choose a writable path")


def atomic_write_many(files: dict[Path, bytes]) -> list[Path]:
    """Write a set of files all or nothing: every file is staged (written and fsynced) before any is renamed.

    A failure while staging (a full disk, a permission error) leaves every
    target as it was; the renames that follow are metadata operations that do
    not fail for lack of space.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = temporary_name(target)
            staged.append((tmp, target))
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
    except BaseException as exc:
        for tmp, _ in staged:
            _discard(tmp)
        if isinstance(exc, OSError):
            where = exc.filename or "output"
            raise SubclassbenchError(f"cannot write {where}: {exc.strerror}; nothing was written") from None
        raise
    for tmp, target in staged:
        os.replace(tmp, target)
    return [target for _, target in staged]


NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def check_name(name: object, what: str) -> str:
    """A name that becomes one path component: lower-case letters, digits, '-', '_', '.'; no '..'; not hidden."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise SubclassbenchError(
            f"invalid {what} {name!r}; use lower-case letters, digits, '-', '_' and '.' "
            "(starting with a letter or digit, no '..', at most 128 characters)"
        )
    return name


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, checked to lie inside ``root`` (no ``..``, absolute paths or links out of it)."""
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise SubclassbenchError(f"{what} {path} lies outside {root}; use a path inside it")
    return resolved


def tree_file(root: Path, path: Path, what: str) -> Path:
    """``path`` checked to be a regular file inside ``root`` once links are followed, or one error line.

    A FIFO or device would block a read, and a link out of the tree would let a data folder or a
    submission make the benchmark read a file elsewhere on the machine; links within the tree are fine."""
    resolved, base = path.resolve(), root.resolve()
    if base not in resolved.parents:
        raise SubclassbenchError(
            f"{what} {path} is a link to {resolved}, outside {root}; copy the file into the folder "
            "(links out of a data or submission folder are not followed)"
        )
    try:
        mode = resolved.stat().st_mode
    except OSError as exc:
        raise SubclassbenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise SubclassbenchError(f"{what} {path} is not a regular file (a FIFO, device or folder); replace it")
    return resolved


MAX_JSON_BYTES = 64 << 20  # a result, card or task file; the largest shipped result is a few hundred kB


def read_bounded(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, or one error line.

    A FIFO or a device would block or never end, and a huge file would exhaust memory: each is refused
    before anything is read.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise SubclassbenchError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SubclassbenchError(f"{what} {path} is not a regular file (a FIFO, device or folder); replace it")
    if info.st_size > max_bytes:
        raise SubclassbenchError(f"{what} {path} is {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)  # the file may have grown since stat
    if len(data) > max_bytes:
        raise SubclassbenchError(f"{what} {path} is more than the {max_bytes:,} bytes allowed")
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        # With a duplicate key, a reader and this tool could see different values: never pick one.
        raise ValueError(f"key {twice!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str | bytes) -> Any:
    """JSON without duplicate keys and without NaN or infinity (ValueError otherwise)."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file read within bounds (:func:`read_bounded`) and strictly (:func:`loads_strict`), or one error line."""
    data = read_bounded(path, what, max_bytes)
    try:
        return loads_strict(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:160]
        raise SubclassbenchError(f"cannot read {what} {path}: {reason}") from None
