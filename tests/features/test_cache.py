"""The feature cache (subclassbench.features.cache): entries written whole as np.save writes them, an
interrupted or damaged entry never read."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from subclassbench.errors import SubclassbenchError
from subclassbench.features.cache import CacheStats, FeatureCache, feature_key

# --------------------------------------------------------------------------- entries written whole


def test_entry_writer_writes_what_np_save_writes(tmp_path):
    cache = FeatureCache(tmp_path)
    x = np.random.RandomState(0).randn(103, 7).astype(np.float32)
    key = "ab" * 32
    fields = {"layer": "a"}
    with cache.writer(key, len(x)) as writer:
        for start in range(0, len(x), 10):
            writer.append(x[start : start + 10])
        writer.commit(fields, {"pooling": "none"})
    reference = tmp_path / "reference.npy"
    np.save(reference, x)
    array_path = tmp_path / key[:2] / f"{key}.npy"
    assert array_path.read_bytes() == reference.read_bytes()
    assert not list((tmp_path / key[:2]).glob(".*.tmp"))


def test_an_interrupted_entry_leaves_nothing(tmp_path):
    """A run killed or failing mid-extraction leaves no entry and no temporary file; a short entry is refused."""
    cache = FeatureCache(tmp_path)
    key = "cd" * 32
    with pytest.raises(KeyboardInterrupt), cache.writer(key, 20) as writer:
        writer.append(np.zeros((10, 3), dtype=np.float32))
        raise KeyboardInterrupt
    with pytest.raises(ValueError, match="10 of its 20 rows"), cache.writer(key, 20) as writer:
        writer.append(np.zeros((10, 3), dtype=np.float32))
        writer.commit({}, {"pooling": "none"})
    with pytest.raises(ValueError, match="does not fit"), cache.writer(key, 20) as writer:
        writer.append(np.zeros((10, 3), dtype=np.float32))
        writer.append(np.zeros((10, 4), dtype=np.float32))
    assert cache.locate(key) is None and list(tmp_path.rglob("*")) == [tmp_path / key[:2]]


# --------------------------------------------------------------------------- damaged entries


def test_a_half_written_or_damaged_entry_is_never_read(tmp_path):
    cache = FeatureCache(tmp_path)
    fields = {"layer": "x"}
    key = feature_key(fields)
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    # An array file without its record (a writer killed between the two renames).
    (tmp_path / key[:2]).mkdir()
    np.save(tmp_path / key[:2] / f"{key}.npy", array)
    assert cache.get(key) is None
    cache.put(key, array, fields, {"pooling": "none"})
    got = cache.get(key)
    assert got is not None and np.array_equal(got[0], array)
    # Truncated after the record was written: the sha256 no longer matches.
    path = tmp_path / key[:2] / f"{key}.npy"
    path.write_bytes(path.read_bytes()[:-8])
    assert cache.get(key) is None
    stray = tmp_path / key[:2] / f".{'e' * 32}.tmp"
    stray.write_bytes(b"partial")
    os.utime(stray, (0, 0))  # a leftover of a writer killed long ago
    assert cache.prune(everything=True) == 1 and not list(tmp_path.glob(f"{key[:2]}/*"))


def test_special_files_and_links_in_the_cache_are_misses_that_never_block(tmp_path):
    """A FIFO in a record's or an array's place would block a read forever, a link could serve a file from
    anywhere, an oversized record could exhaust memory: each is a miss (and skipped when listing)."""
    cache = FeatureCache(tmp_path / "cache")
    fields = {"layer": "x"}
    key = feature_key(fields)
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(key, array, fields, {"pooling": "none"})
    folder = tmp_path / "cache" / key[:2]
    record, data = folder / f"{key}.json", folder / f"{key}.npy"
    assert cache.get(key) is not None and len(cache.entries()) == 1
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for path in (record, data):
        kept = outside / path.name
        path.rename(kept)
        os.mkfifo(path)  # read_text or hashing would block here
        assert cache.get(key) is None
        path.unlink()
        path.symlink_to(kept)  # the same bytes, through a link out of the cache
        assert cache.get(key) is None
        path.unlink()
        kept.rename(path)
    assert cache.get(key) is not None
    record.write_text(record.read_text() + " " * (2 << 20))  # valid JSON, but no record is this large
    assert cache.get(key) is None
    with pytest.warns(UserWarning, match="skipping malformed cache record"):
        assert cache.entries() == []


# --------------------------------------------------------------------------- what `subclassbench cache list` reads


def test_an_entry_lists_what_its_record_says_and_usage_counts_it(tmp_path):
    assert FeatureCache(tmp_path / "not-made-yet").usage() == (0, 0)
    cache = FeatureCache(tmp_path)
    assert cache.usage() == (0, 0)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    key = "cd" * 32
    fields = {"layer": "block1", "rows": [0, 4], "encoder": {"spec": "builtin:digits_cnn"}}
    with cache.writer(key, len(x)) as writer:
        writer.append(x)
        writer.commit(fields, {"task": "digits-5", "split_name": "test"})
    record = json.loads((tmp_path / key[:2] / f"{key}.json").read_text())
    assert record["dtype"] == "float32" and record["task"] == "digits-5" and record["fields"] == fields
    (entry,) = cache.entries()
    assert (entry.key, entry.shape, entry.layer, entry.rows, entry.task, entry.split, entry.spec) == (
        key, (4, 3), "block1", (0, 4), "digits-5", "test", "builtin:digits_cnn"
    )  # fmt: skip
    assert entry.bytes == (tmp_path / key[:2] / f"{key}.npy").stat().st_size and entry.created > 0
    files = [p for p in (tmp_path / key[:2]).iterdir()]
    assert cache.usage() == (1, sum(p.stat().st_size for p in files))
    assert CacheStats(hits=2, misses=1).to_dict() == {"hits": 2, "misses": 1}


def test_a_record_filed_under_another_key_is_not_listed(tmp_path):
    cache = FeatureCache(tmp_path)
    key = "ef" * 32
    cache.put(key, np.zeros((2, 2), dtype=np.float32), {"layer": "a"})
    moved = tmp_path / "00"
    moved.mkdir()
    (tmp_path / key[:2] / f"{key}.json").rename(moved / f"{key}.json")  # right name, wrong folder
    with pytest.warns(UserWarning, match="does not match the record's file name"):
        assert cache.entries() == []


def test_an_unwritable_cache_is_named_in_its_refusal(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SubclassbenchError, match="the feature cache"):
        FeatureCache(blocker / "cache").check_writable()


def test_prune_removes_stale_temporaries_of_both_namings_and_nothing_else(tmp_path):
    """Writers name their temporary files ``.<uuid>.tmp``; earlier versions used ``<key>.npy|json.<uuid>.tmp``.
    Stale ones of either naming go; a young one may be a running writer's, and a file of any other name is not
    the cache's to delete."""
    cache = FeatureCache(tmp_path)
    key = "ab" * 32
    shard = tmp_path / key[:2]
    shard.mkdir()
    stale = [shard / f".{'1' * 32}.tmp", shard / f"{key}.npy.{'2' * 32}.tmp", shard / f"{key}.json.{'3' * 32}.tmp"]
    young = shard / f".{'4' * 32}.tmp"
    foreign = [
        shard / "notes.txt",
        shard / f"{key}.npz.{'5' * 32}.tmp",  # not an extension the cache writes
        shard / f"{key[:-1]}.npy.{'6' * 32}.tmp",  # a 63-digit key
        shard / f"{key}.npy.{'7' * 31}.tmp",
        shard / f".{'8' * 31}.tmp",
    ]
    for path in [*stale, young, *foreign]:
        path.write_bytes(b"partial")
    for path in [*stale, *foreign]:
        os.utime(path, (0, 0))
    assert cache.prune(everything=True) == 0
    assert sorted(p.name for p in shard.iterdir()) == sorted(p.name for p in [young, *foreign])


def test_usage_skips_a_file_removed_while_it_counts(tmp_path, monkeypatch):
    """Another process may prune or rename a file between the listing and its ``stat``: that file is skipped
    and every other one is still counted."""
    cache = FeatureCache(tmp_path)
    for key in ("ab" * 32, "ac" * 32, "cd" * 32):
        cache.put(key, np.zeros((2, 2), dtype=np.float32), {"layer": key[:2]})
    files = sorted(tmp_path.glob("??/*"))
    total = sum(p.stat().st_size for p in files)
    real_stat = type(tmp_path).stat
    gone: list[str] = []

    def stat(self, *args, **kwargs):  # the first file asked about has just been removed
        if self.parent.parent == tmp_path and not gone:
            gone.append(str(self))
            raise FileNotFoundError(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "stat", stat)
    entries, size = cache.usage()
    monkeypatch.undo()
    (first,) = gone
    assert entries == 3 and size == total - next(p.stat().st_size for p in files if str(p) == first)


def test_a_record_without_its_optional_fields_is_listed_with_blanks(tmp_path):
    """Only the key and shape are needed to list an entry (records written by hand or by earlier versions may
    lack the rest): its size and age read 0, its encoder, layer, rows, task and split nothing."""
    cache = FeatureCache(tmp_path)
    key = "9a" * 32
    cache.put(key, np.zeros((3, 2), dtype=np.float32), {"layer": "a"})
    record_path = tmp_path / key[:2] / f"{key}.json"
    record_path.write_text(json.dumps({"key": key, "shape": [3, 2]}))
    (entry,) = cache.entries()
    assert (entry.key, entry.shape, entry.bytes, entry.created) == (key, (3, 2), 0, 0.0)
    assert (entry.spec, entry.layer, entry.rows, entry.task, entry.split) == (None, None, None, None, None)
