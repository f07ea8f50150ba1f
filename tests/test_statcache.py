"""The stat index (xxhash-named, advisory): a fast path that must agree with the slow one.

A hit skips reading a file only when its stat data is exactly what it was, the entry is not racy
and the blob is still in the store. These tests show each rule, and that a re-put through the
cache gives the same oids and sha256 as a store that has no cache at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitstore import Store, statcache
from gitstore.statcache import StatCache, stat_key

HOUR_NS = 3600 * 10**9


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_old(path: Path, data: bytes) -> None:
    """Write ``data`` and date its mtime an hour back (as files untouched for a while are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time_ns() - HOUR_NS
    os.utime(path, ns=(old, old))


@pytest.fixture
def late_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are recorded as if 10 s after the files last changed, so they are not racy.

    Only the clock the cache stamps entries with moves; files and stat data are real.
    """
    fake = types.SimpleNamespace(time_ns=lambda: time.time_ns() + 10 * 10**9)
    monkeypatch.setattr(statcache, "time", fake)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool]]]:
    """Every StatCache.lookup made, as (relative path, hit?)."""
    seen: list[tuple[str, bool]] = []
    real = StatCache.lookup

    def spy(self: StatCache, rel: str, st: os.stat_result) -> tuple[str, str] | None:
        out = real(self, rel, st)
        seen.append((rel, out is not None))
        return out

    monkeypatch.setattr(StatCache, "lookup", spy)
    yield seen


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_old(root / "a.txt", b"alpha\n")
    write_old(root / "sub" / "b.json", b'{"b": 1}')
    write_old(root / "big.bin", os.urandom((1 << 20) + 333))
    return root


def identities(version: object) -> list[tuple[str, str, str, int]]:
    return [(a.name, a.oid, a.sha256, a.size) for a in version.artifacts]  # type: ignore[attr-defined]


# -- the index on its own -------------------------------------------------------------------


def test_lookup_of_an_unknown_path_misses(tmp_path: Path) -> None:
    write_old(tmp_path / "f", b"x")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    assert cache.lookup("f", os.stat(tmp_path / "f")) is None


def test_entry_recorded_well_after_the_last_change_is_trusted(
    tmp_path: Path, late_recording: None
) -> None:
    write_old(tmp_path / "f", b"x")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", os.stat(tmp_path / "f"), "1" * 40, "2" * 64)
    assert cache.lookup("f", os.stat(tmp_path / "f")) == ("1" * 40, "2" * 64)


def test_entries_survive_save_and_reload(tmp_path: Path, late_recording: None) -> None:
    write_old(tmp_path / "f", b"x")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", os.stat(tmp_path / "f"), "1" * 40, "2" * 64)
    cache.save()
    again = StatCache(str(tmp_path / "cache"), str(tmp_path))
    assert again.lookup("f", os.stat(tmp_path / "f")) == ("1" * 40, "2" * 64)


def test_entry_recorded_right_after_a_write_is_racy(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"just written")
    st = os.stat(tmp_path / "f")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", st, "1" * 40, "2" * 64)
    assert time.time_ns() - st.st_mtime_ns < statcache.RACY_NS  # the premise of this test
    assert cache.lookup("f", st) is None


def test_entry_recorded_right_after_an_mtime_restore_is_racy(tmp_path: Path) -> None:
    # utime back-dates the mtime but sets the ctime to now. Until the clock tick moves on, a
    # same-size rewrite + utime restore can leave size, mtime AND ctime all unchanged, so the
    # entry is as racy as one recorded right after a write: it must not be trusted yet.
    write_old(tmp_path / "f", b"restored")
    st = os.stat(tmp_path / "f")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", st, "1" * 40, "2" * 64)
    assert time.time_ns() - st.st_ctime_ns < statcache.RACY_NS  # the premise of this test
    assert cache.lookup("f", st) is None


def test_changed_size_misses(tmp_path: Path, late_recording: None) -> None:
    write_old(tmp_path / "f", b"x")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", os.stat(tmp_path / "f"), "1" * 40, "2" * 64)
    write_old(tmp_path / "f", b"xy")
    assert cache.lookup("f", os.stat(tmp_path / "f")) is None


def test_replaced_file_with_the_same_size_and_mtime_misses(
    tmp_path: Path, late_recording: None
) -> None:
    write_old(tmp_path / "f", b"x")
    before = os.stat(tmp_path / "f")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", before, "1" * 40, "2" * 64)
    (tmp_path / "g").write_bytes(b"y")
    os.utime(tmp_path / "g", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(tmp_path / "g", tmp_path / "f")  # a new inode under the same name
    assert cache.lookup("f", os.stat(tmp_path / "f")) is None


def test_damaged_index_file_is_ignored(tmp_path: Path, late_recording: None) -> None:
    write_old(tmp_path / "f", b"x")
    cache = StatCache(str(tmp_path / "cache"), str(tmp_path))
    cache.record("f", os.stat(tmp_path / "f"), "1" * 40, "2" * 64)
    cache.save()
    Path(cache.path).write_bytes(b"\xc1 not msgpack at all")
    again = StatCache(str(tmp_path / "cache"), str(tmp_path))
    assert again.lookup("f", os.stat(tmp_path / "f")) is None
    again.record("f", os.stat(tmp_path / "f"), "3" * 40, "4" * 64)
    again.save()
    assert StatCache(str(tmp_path / "cache"), str(tmp_path)).lookup(
        "f", os.stat(tmp_path / "f")
    ) == ("3" * 40, "4" * 64)


def test_stat_key_holds_size_times_inode_device_and_mode(tmp_path: Path) -> None:
    write_old(tmp_path / "f", b"abc")
    st = os.stat(tmp_path / "f")
    assert stat_key(st) == (
        3,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
        st.st_mode,
    )


# -- through the store ----------------------------------------------------------------------


def test_reput_of_an_unchanged_folder_hits_and_matches_a_store_without_cache(
    disk_store: Store, folder: Path, late_recording: None, lookups: list[tuple[str, bool]]
) -> None:
    disk_store.put("s/first", {"out": folder})
    lookups.clear()
    # A new task, so the identities returned are the ones this put computed (not carried over).
    fast = disk_store.put("s/second", {"out": folder})
    assert sorted(lookups) == [("a.txt", True), ("big.bin", True), ("sub/b.json", True)]
    slow = Store.memory().put("s/second", {"out": folder})
    assert identities(fast) == identities(slow)
    for a in fast.artifacts:
        assert disk_store.get(a.uri) == (folder / a.name.removeprefix("out/")).read_bytes()


def test_reput_of_a_single_file_hits_and_matches_a_store_without_cache(
    disk_store: Store, folder: Path, late_recording: None, lookups: list[tuple[str, bool]]
) -> None:
    disk_store.put("s/first", {"a": folder / "a.txt"})
    lookups.clear()
    fast = disk_store.put("s/second", {"a": folder / "a.txt"})
    assert lookups == [("a.txt", True)]
    assert identities(fast) == identities(Store.memory().put("s/x", {"a": folder / "a.txt"}))


def test_file_changed_with_same_size_and_restored_mtime_is_reread(
    disk_store: Store, folder: Path, late_recording: None, lookups: list[tuple[str, bool]]
) -> None:
    target = folder / "a.txt"
    disk_store.put("s/first", {"out": folder})
    before = os.stat(target)
    target.write_bytes(b"ALPHA\n")  # same size, other bytes
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    # Only the ctime can tell. Wait (without sleeping) for the clock tick to move, if it has not.
    while os.stat(target).st_ctime_ns == before.st_ctime_ns:
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(target)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    lookups.clear()
    v = disk_store.put("s/second", {"out": folder})
    assert ("a.txt", False) in lookups
    assert v.artifact("out/a.txt").oid == git_oid(b"ALPHA\n")
    assert disk_store.get("s/second", "out/a.txt") == b"ALPHA\n"


def test_file_just_written_is_reread_on_the_next_put(
    disk_store: Store, tmp_path: Path, lookups: list[tuple[str, bool]]
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "new.log").write_bytes(b"written a moment ago")
    disk_store.put("s/first", {"out": fresh})
    lookups.clear()
    v = disk_store.put("s/second", {"out": fresh})
    assert lookups == [("new.log", False)]
    assert v.artifact("out/new.log").oid == git_oid(b"written a moment ago")


def test_hit_is_not_trusted_when_the_blob_is_gone(
    store_path: Path, folder: Path, late_recording: None, lookups: list[tuple[str, bool]]
) -> None:
    with Store.open(store_path, create=True) as s:
        s.put("s/t", {"out": folder})
        s.rm_task("s/t")
    # No ref reaches anything now: drop every object, as a gc would, and keep the stat index.
    objects = store_path / "objects"
    for entry in objects.iterdir():
        if entry.is_dir() and entry.name not in ("info", "pack"):
            shutil.rmtree(entry)
    for entry in (objects / "pack").iterdir():
        entry.unlink()
    assert list((store_path / "gitstore" / "statcache").iterdir())
    lookups.clear()
    with Store.open(store_path) as s:
        v = s.put("s/t", {"out": folder})
        assert sorted(lookups) == [("a.txt", True), ("big.bin", True), ("sub/b.json", True)]
        for a in v.artifacts:
            assert s.get(a.uri) == (folder / a.name.removeprefix("out/")).read_bytes()
        assert s.verify() == []


def test_damaged_index_file_means_the_slow_path_with_the_same_result(
    disk_store: Store, store_path: Path, folder: Path, late_recording: None
) -> None:
    disk_store.put("s/first", {"out": folder})
    index_files = list((store_path / "gitstore" / "statcache").iterdir())
    assert index_files
    for f in index_files:
        f.write_bytes(b"\x00garbage\xff" * 10)
    v = disk_store.put("s/second", {"out": folder})
    assert identities(v) == identities(Store.memory().put("s/second", {"out": folder}))
