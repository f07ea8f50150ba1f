"""gc and small-pack merging: crashed writes are cleaned up, live writers are left alone, and a
write that fails (a full disk) removes its own temp files instead of leaving them to gc."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import fsck, git

import gitstore.backend.objects
import gitstore.backend.packs
from gitstore import InputError, IntegrityError, Store
from gitstore.backend.objects import hash_bytes
from gitstore.backend.packs import MERGE_AT
from gitstore.gc import TEMP_GRACE


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


# -- failed writes clean up after themselves ------------------------------------------------------


def _full_disk_on_call(n: int, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that its ``n``-th call fails as a full disk does."""
    calls = 0

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    return call


def _object_files(store_path: Path) -> list[str]:
    """Every file under objects/ (temp files included), relative to it."""
    root = store_path / "objects"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _no_space(e: BaseException) -> bool:
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left" in str(e)


@pytest.mark.parametrize("call", [1, 2], ids=["pack", "index"])
@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_a_pack_write_that_fails_leaves_no_file_and_moves_no_ref(
    disk_store: Store, store_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str, call: int
) -> None:
    disk_store.put("s/t", {"a.txt": "v1\n"})
    before = _object_files(store_path)
    if fails == "write":  # the first write is the pack's, the second its index's
        monkeypatch.setattr(gitstore.backend.packs, "write_all", _full_disk_on_call(call, os.write))
    else:  # fsync is on by default: the pack's file first, then its index's
        monkeypatch.setattr(os, "fsync", _full_disk_on_call(call, os.fsync))
    with pytest.raises(OSError) as caught:
        disk_store.put("s/t", {"a.txt": "v2\n", "b.txt": "new\n"})
    assert _no_space(caught.value)
    monkeypatch.undo()
    assert _object_files(store_path) == before
    assert disk_store.get("s/t", "a.txt") == b"v1\n"
    assert disk_store.verify() == []
    fsck(store_path)


def test_a_pack_whose_index_cannot_be_renamed_is_removed_again(
    disk_store: Store, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _object_files(store_path)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(".idx"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        disk_store.put("s/t", {"a.txt": "never seen\n"})
    monkeypatch.undo()
    assert _object_files(store_path) == before
    assert disk_store.heads() == {}


@pytest.mark.parametrize("source", ["bytes", "file"])
@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_a_loose_object_write_that_fails_leaves_no_file(
    disk_store: Store,
    store_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    fails: str,
) -> None:
    data = os.urandom(3 << 20)  # above the small-blob limit: written as a loose object
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    before = _object_files(store_path)
    if fails == "write":  # bytes are written at once; a file chunk by chunk: fail mid-file
        n = 1 if source == "bytes" else 2
        monkeypatch.setattr(gitstore.backend.objects, "write_all", _full_disk_on_call(n, os.write))
    else:
        monkeypatch.setattr(os, "fsync", _full_disk_on_call(1, os.fsync))
    with pytest.raises((OSError, InputError)) as caught:
        disk_store.put("s/t", {"big.bin": data if source == "bytes" else big})
    assert _no_space(caught.value)
    monkeypatch.undo()
    assert _object_files(store_path) == before
    oid = hash_bytes(data).oid
    assert not (store_path / "objects" / oid[:2] / oid[2:]).exists()
    assert disk_store.heads() == {}


def test_a_merge_that_fails_removes_its_temp_pack_and_keeps_the_packs(
    disk_store: Store, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        disk_store.put("s/t", {"n": str(i)})
    before = _object_files(store_path)
    monkeypatch.setattr(gitstore.backend.packs, "write_all", _full_disk_on_call(1, os.write))
    with pytest.raises(OSError) as caught:
        disk_store.gc()
    assert _no_space(caught.value)
    monkeypatch.undo()
    assert _object_files(store_path) == before
    assert disk_store.get("s/t", "n") == b"5"
    assert disk_store.verify() == []
    assert disk_store.gc().merges >= 1  # what the full disk held back


# Puts on a real, nearly full file system: a 4 MiB tmpfs, mounted in a private mount namespace
# (unshare -m) so that it vanishes with the script. Prints what the test checks.
FULL_DISK = r"""
D=$1 G=$2 IN=$3 S=$1/store.git
mount -t tmpfs -o size=4m tmpfs "$D" || exit 99
"$G" --store "$S" put s/t "$IN/v1.txt" >/dev/null || exit 98
head -c 8M /dev/zero >"$D/filler" 2>/dev/null
truncate -s -1M "$D/filler"  # 1 MiB left: a 3 MiB blob fails part way
"$G" --store "$S" put s/t "$IN/big.bin"; echo "big-put=$?"
rm "$D/filler"; head -c 8M /dev/zero >"$D/filler" 2>/dev/null  # nothing left
"$G" --store "$S" put s/t "$IN/v2.txt"; echo "small-put=$?"
(cd "$S/objects" && find . -type f | sed 's/^/file /')
"$G" --store "$S" log s/t | sed 's/^/log /'
rm "$D/filler"
"$G" --store "$S" put s/t "$IN/v3.txt" >/dev/null; echo "put-after=$?"
"$G" --store "$S" verify
"""


def test_puts_on_a_full_file_system_leave_no_file_behind(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "gitstore"
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-m", "true"]).returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m needs root or CAP_SYS_ADMIN)")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "big.bin").write_bytes(os.urandom(3 << 20))
    for v in ("v1", "v2", "v3"):
        (inputs / f"{v}.txt").write_text(f"{v}\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        [unshare, "-m", "sh", "-c", FULL_DISK, "sh", str(mnt), str(cli), str(inputs)],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a speed claim
    )
    if r.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert "big-put=7" in out and "small-put=7" in out, r.stdout
    assert r.stderr.count("No space left on device") == 2, r.stderr
    files = [line.split(" ", 1)[1] for line in out if line.startswith("file ")]
    assert files and all(f.startswith("./pack/pack-") for f in files), files  # v1's pack only
    assert len([line for line in out if line.startswith("log ")]) == 1, r.stdout
    assert "put-after=0" in out and "ok: no problems found" in out, r.stdout


@pytest.mark.parametrize("damage", ["truncated-pack", "truncated-index"])
def test_a_merge_leaves_a_damaged_pack_alone(
    disk_store: Store, store_path: Path, damage: str
) -> None:
    versions = [disk_store.put(f"s/t{i}", {"n": str(i)}) for i in range(6)]
    pack_dir = store_path / "objects" / "pack"
    holder = next(idx for idx in pack_dir.glob("*.idx") if versions[0].commit in _listed(idx))
    victim = holder.with_suffix(".pack") if damage == "truncated-pack" else holder
    os.truncate(victim, victim.stat().st_size - 30)
    # The writers' merge passes the damaged pack over; gc, which must read all that refs reach
    # before it removes anything, stops on it instead (see test_gc_unreadable.py).
    assert gitstore.backend.packs.merge_small_packs(str(pack_dir), fsync=True, force=True)
    assert victim.exists() and holder.with_suffix(".pack").exists()  # left for repair
    with pytest.raises(IntegrityError, match="gc stopped"):
        disk_store.gc()
    for i in range(1, 6):
        assert disk_store.get(f"s/t{i}", "n") == str(i).encode()


def _listed(idx: Path) -> str:
    """The object ids a pack index lists, as stock git reads them."""
    shown = subprocess.run(["git", "show-index"], input=idx.read_bytes(), capture_output=True)
    return shown.stdout.decode()
