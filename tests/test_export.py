"""Export writes every file to its temp name first, makes them all durable at once, then renames
them into place: an error before the renames leaves the folder as it was, and no temp file is
ever left behind by an export that returns or raises. Its small blobs are read a batch at a time
(``small_blobs``), and a damaged one fails the export as it fails any read. Durable at once: one
syncfs where that is as good as an fsync of each file and costs less, else an fsync of each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import compressible

import gitstore._fs
from gitstore import Store
from gitstore._fs import SYNCFS_DIRTY_MAX, sync_files
from gitstore.backend.objects import DiskObjects, small_blobs
from gitstore.errors import IntegrityError

BIG = 2 << 20  # above SMALL_BLOB: streamed from its loose object, not read whole ahead


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_file_is_written_and_no_temp_file_is_left(disk_store: Store, tmp_path: Path) -> None:
    arts: dict[str, bytes] = {f"d{i % 7}/f{i:03d}.txt": b"%d\n" % i * (i + 1) for i in range(300)}
    arts["big.log"] = compressible(BIG)
    disk_store.put("s/t", arts)
    dest = tmp_path / "out"
    written = disk_store.export("s/t", dest)
    assert sorted(written) == sorted(str(dest / name) for name in arts)
    assert files_under(dest) == arts


def test_a_blob_that_cannot_be_read_leaves_the_folder_as_it_was(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    big = compressible(BIG)
    version = disk_store.put("s/t", {"a.txt": b"new", "b.log": big, "c.txt": b"c"})
    oid = next(a.oid for a in version.artifacts if a.name == "b.log")
    loose = store_path / "objects" / oid[:2] / oid[2:]
    assert loose.is_file()
    with open(loose, "r+b") as f:  # damage the stream well past its header
        f.truncate(os.path.getsize(loose) // 2)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"old")
    with pytest.raises(IntegrityError, match=oid):
        disk_store.export("s/t", dest)
    # a.txt was read and written to its temp name before b.log failed: neither it nor any temp
    # file may show, and the older a.txt is still there.
    assert files_under(dest) == {"a.txt": b"old"}


def test_progress_counts_every_byte_once(disk_store: Store, tmp_path: Path) -> None:
    arts = {"small.txt": b"s" * 1000, "big.log": compressible(BIG), "empty": b""}
    disk_store.put("s/t", arts)
    seen: list[int] = []
    disk_store.export("s/t", tmp_path / "out", progress=seen.append)
    assert sum(seen) == sum(len(b) for b in arts.values())


def test_an_export_stopped_by_the_progress_callback_leaves_no_file(
    disk_store: Store, tmp_path: Path
) -> None:
    disk_store.put("s/t", {f"f{i}": b"x" * 100 for i in range(50)})
    count = 0

    def stop_at_the_tenth(n: int) -> None:
        nonlocal count
        count += 1
        if count == 10:
            raise KeyboardInterrupt

    dest = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        disk_store.export("s/t", dest, progress=stop_at_the_tenth)
    assert files_under(dest) == {}


def _fs_type(path: Path) -> str:
    if shutil.which("findmnt") is None:
        pytest.skip("needs findmnt")
    out = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)], capture_output=True, text=True
    )
    return out.stdout.strip()


def _files(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    paths = [str(folder / f"f{i}") for i in range(n)]
    for p in paths:
        Path(p).write_bytes(b"data")
    return paths


def test_files_on_a_journalled_local_file_system_are_synced_by_one_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.uname().sysname != "Linux" or _fs_type(tmp_path) not in ("ext4", "xfs", "btrfs"):
        pytest.skip("syncfs is used on Linux ext4, xfs and btrfs")
    monkeypatch.setattr(gitstore._fs, "_unwritten", lambda: 0)  # a machine at rest
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fsync", fsyncs.append)
    sync_files(_files(tmp_path / "a", 20))
    assert fsyncs == []


def test_files_on_a_machine_busy_writing_are_fsynced_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A syncfs would wait for every other program's unwritten bytes too.
    monkeypatch.setattr(gitstore._fs, "_unwritten", lambda: SYNCFS_DIRTY_MAX + 1)
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fsync", fsyncs.append)
    sync_files(_files(tmp_path / "a", 20))
    assert len(fsyncs) == 20


def test_files_on_a_file_system_whose_syncfs_is_not_trusted_are_fsynced_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitstore._fs, "_fs_type", lambda dev: "nfs4")
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fsync", fsyncs.append)
    sync_files(_files(tmp_path / "a", 20))
    assert len(fsyncs) == 20


def test_the_file_system_type_is_read_from_the_mount_table(tmp_path: Path) -> None:
    from gitstore._fs import _fs_type as fs_type

    if not os.path.exists("/proc/self/mountinfo"):
        pytest.skip("Linux only")
    assert fs_type(os.stat(tmp_path).st_dev) == _fs_type(tmp_path)


def _entry_offset(store_path: Path, oid: str) -> tuple[Path, int, int]:
    """The pack holding ``oid``, its entry's offset and the next entry's (stock git's index)."""
    for idx in (store_path / "objects" / "pack").glob("*.idx"):
        out = subprocess.run(
            ["git", "show-index"], input=idx.read_bytes(), capture_output=True, check=True
        ).stdout.decode()
        offsets = sorted((int(line.split()[0]), line.split()[1]) for line in out.splitlines())
        for k, (offset, sha) in enumerate(offsets):
            if sha == oid:
                end = offsets[k + 1][0] if k + 1 < len(offsets) else idx.stat().st_size
                return idx.with_suffix(".pack"), offset, end
    raise AssertionError(f"{oid} is in no pack")


def test_a_damaged_packed_blob_fails_the_export_as_it_fails_a_read(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    arts = {f"f{i:02d}.txt": b"line %d\n" % i * 200 for i in range(20)}
    version = disk_store.put("s/t", arts)
    oid = next(a.oid for a in version.artifacts if a.name == "f07.txt")
    pack, start, end = _entry_offset(store_path, oid)
    with open(pack, "r+b") as f:  # flip a byte in the middle of its deflated bytes
        f.seek((start + end) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with Store.open(store_path) as fresh:
        with pytest.raises(IntegrityError) as read:
            fresh.save_artifact("s/t", tmp_path / "one", "f07.txt")
        dest = tmp_path / "out"
        with pytest.raises(IntegrityError) as exported:
            fresh.export("s/t", dest)
    assert oid in str(read.value)
    assert str(exported.value) == str(read.value)
    assert files_under(dest) == {}


def test_a_fresh_handle_reads_a_versions_small_blobs_in_one_pass(
    disk_store: Store, store_path: Path
) -> None:
    arts = {f"f{i:02d}.txt": b"small %d\n" % i * 50 for i in range(30)}
    arts["big.log"] = compressible(BIG)  # loose: not for this path
    version = disk_store.put("s/t", arts)
    oids = [a.oid for a in version.artifacts]
    fresh = DiskObjects(str(store_path / "objects"), fsync=True, compression=1)
    try:  # no pack index opened yet
        found = small_blobs(fresh, oids)
    finally:
        fresh.close()
    expect = {a.oid: (None if a.name == "big.log" else arts[a.name]) for a in version.artifacts}
    assert dict(zip(oids, found, strict=True)) == expect
