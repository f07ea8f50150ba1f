"""gc and small-pack merging: crashed writes are cleaned up, live writers are left alone."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from support import fsck, git

from gitstore import Store
from gitstore.gc import TEMP_GRACE
from gitstore.packs import MERGE_AT


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _packs(store_path: Path) -> list[Path]:
    return sorted((store_path / "objects" / "pack").glob("*.pack"))


def test_gc_removes_an_abandoned_temp_file(disk_store: Store, store_path: Path) -> None:
    tmp = store_path / "objects" / "tmp_obj_123_abandoned"
    tmp.write_bytes(b"half a blob")
    _age(tmp, TEMP_GRACE + 60)
    report = disk_store.gc()
    assert report.temp_files == 1
    assert not tmp.exists()


def test_gc_keeps_a_temp_file_a_live_writer_holds(disk_store: Store, store_path: Path) -> None:
    tmp = store_path / "objects" / "tmp_obj_456_live"
    tmp.write_bytes(b"a slow writer's blob")
    _age(tmp, TEMP_GRACE + 60)
    fd = os.open(tmp, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a live writer holds while it writes
    try:
        report = disk_store.gc()
    finally:
        os.close(fd)
    assert report.temp_files == 0
    assert tmp.exists()


def test_gc_keeps_a_young_temp_file(disk_store: Store, store_path: Path) -> None:
    tmp = store_path / "objects" / "pack" / "tmp_pack_789_young"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_bytes(b"PACK")
    assert disk_store.gc().temp_files == 0
    assert tmp.exists()


def test_gc_breaks_a_dead_writers_ref_lock(disk_store: Store, store_path: Path) -> None:
    disk_store.put("s/t", {"a": b"1"})
    lock = store_path / "refs" / "artifacts" / "s" / "t.lock"
    lock.write_bytes(b"")
    _age(lock, 60)
    assert disk_store.gc().stale_locks == 1
    assert not lock.exists()
    assert disk_store.put("s/t", {"a": b"2"}).version == 2


def test_gc_prunes_old_unreachable_loose_blobs_only(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    big_gone = tmp_path / "gone.bin"
    big_gone.write_bytes(os.urandom(2 << 20))
    big_kept = tmp_path / "kept.bin"
    big_kept.write_bytes(os.urandom(2 << 20))
    gone = disk_store.put("s/gone", {"b": big_gone}).artifact("b").oid
    kept = disk_store.put("s/kept", {"b": big_kept}).artifact("b").oid
    disk_store.rm_task("s/gone")
    for oid in (gone, kept):
        _age(store_path / "objects" / oid[:2] / oid[2:], 30 * 86400)
    report = disk_store.gc()
    assert report.pruned_objects == 1
    assert not (store_path / "objects" / gone[:2] / gone[2:]).exists()
    assert disk_store.get("s/kept", "b") == big_kept.read_bytes()
    fsck(store_path)


def test_gc_keeps_unreachable_blobs_inside_the_grace_period(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    big = tmp_path / "b.bin"
    big.write_bytes(os.urandom(2 << 20))
    oid = disk_store.put("s/t", {"b": big}).artifact("b").oid
    disk_store.rm_task("s/t")
    assert disk_store.gc().pruned_objects == 0
    assert (store_path / "objects" / oid[:2] / oid[2:]).exists()


def test_gc_dry_run_changes_nothing(disk_store: Store, store_path: Path, tmp_path: Path) -> None:
    big = tmp_path / "b.bin"
    big.write_bytes(os.urandom(2 << 20))
    oid = disk_store.put("s/t", {"b": big}).artifact("b").oid
    disk_store.rm_task("s/t")
    loose = store_path / "objects" / oid[:2] / oid[2:]
    _age(loose, 30 * 86400)
    tmp = store_path / "objects" / "tmp_obj_1_x"
    tmp.write_bytes(b"x")
    _age(tmp, TEMP_GRACE + 60)
    report = disk_store.gc(dry_run=True)
    assert (report.pruned_objects, report.temp_files) == (1, 1)
    assert loose.exists() and tmp.exists()


def test_many_puts_keep_the_pack_count_bounded(disk_store: Store, store_path: Path) -> None:
    for i in range(3 * MERGE_AT):
        disk_store.put(f"s/t{i % 5}", {"log.log": f"line {i}\n", "n.json": str(i)})
    assert len(_packs(store_path)) <= MERGE_AT + 1
    for i in range(5):
        assert disk_store.get(f"s/t{i}", "log.log").startswith(b"line ")
    assert disk_store.verify() == []
    fsck(store_path)


def test_merged_packs_hold_every_object_once_and_git_reads_them(
    disk_store: Store, store_path: Path
) -> None:
    versions = [disk_store.put("s/t", {"same.txt": b"same\n", "n": str(i)}) for i in range(40)]
    disk_store.gc()
    assert len(_packs(store_path)) < 40
    listed = git(store_path, "rev-list", "--objects", "--all").stdout.split("\n")
    assert len(listed) > 40
    for v in versions[::7]:
        assert disk_store.get(f"s/t@{v.commit}", "n") == str(v.version - 1).encode()
    out = git(store_path, "cat-file", "-p", versions[0].artifact("same.txt").oid).stdout
    assert out == "same\n"
    fsck(store_path)


def test_gc_on_a_memory_store_is_a_no_op() -> None:
    with Store.memory() as store:
        store.put("s/t", {"a": b"1"})
        assert store.gc().pruned_objects == 0


def test_gc_dry_run_reports_a_merge_it_would_make(disk_store: Store, store_path: Path) -> None:
    for i in range(6):
        disk_store.put("s/t", {"n": str(i)})
    before = _packs(store_path)
    assert disk_store.gc(dry_run=True).merges == 1
    assert _packs(store_path) == before
    assert disk_store.gc().merges >= 1
    assert len(_packs(store_path)) < len(before)
