"""Hashing (subclassbench.core.hashing): file hashes memoised by path, size and mtime."""

from __future__ import annotations

from pathlib import Path


def test_file_hashes_are_memoised_by_path_size_and_mtime(tmp_path, monkeypatch):
    import os

    from subclassbench.core import hashing

    files = []
    for i in range(5):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (1000 + i))
        files.append(path)
    index = tmp_path / "index" / "file-hashes.sqlite"
    calls: list[Path] = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: calls.append(Path(p)) or real(p))
    first = hashing.sha256_files(files, index)
    assert first == [real(p) for p in files] and len(calls) == 5
    calls.clear()
    assert hashing.sha256_files(files, index) == first and calls == []  # a re-run reads no file
    files[2].write_bytes(b"changed")
    os.utime(files[3], ns=(1, 1))  # same content, other mtime: hashed again (cheap, and safe)
    again = hashing.sha256_files(files, index)
    assert sorted(calls) == [files[2], files[3]] and again[2] == real(files[2]) and again[3] == first[3]
    index.write_bytes(b"not a database")  # damaged: everything is hashed again and the index is rebuilt
    calls.clear()
    assert hashing.sha256_files(files, index) == again and len(calls) == 5
    calls.clear()
    assert hashing.sha256_files(files, index) == again and calls == []
