"""Incompressible big blobs live in packs of one stored entry, which transfers copy as they are;
a pull feeds git index-pack as the pack arrives. Stock git is the second opinion."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from support import compressible, fsck, git

import gitstore.backend.blobpack
from gitstore import CorruptTransferError, InputError, Store
from gitstore import remote as R
from gitstore.remote.transport import IndexPack, transport_errors


def packs(store: Path) -> set[str]:
    return {p.name for p in (store / "objects" / "pack").glob("*.pack")}


def entries(store: Path, pack: str) -> list[list[str]]:
    """``git verify-pack -v`` rows of one pack: id, kind, size, size in pack, offset."""
    out = git(store, "verify-pack", "-v", str(store / "objects" / "pack" / pack)).stdout
    return [line.split() for line in out.splitlines() if len(line.split()) >= 5]


def cat_blob(gitdir: Path, oid: str) -> bytes:
    """The blob's bytes as stock git reads them."""
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", "cat-file", "blob", oid], capture_output=True, check=True
    ).stdout


# -- big blobs that do not compress --------------------------------------------------------


def test_an_incompressible_big_blob_is_one_stored_entry_in_a_pack_of_its_own(
    disk_store: Store, store_path: Path
) -> None:
    data = os.urandom(3 << 20)
    before = packs(store_path)
    oid = disk_store.put("s/t", {"big.bin": data}).artifact("big.bin").oid
    assert not (store_path / "objects" / oid[:2] / oid[2:]).exists()
    (mine,) = [p for p in packs(store_path) - before if entries(store_path, p)[0][0] == oid]
    ((_, kind, size, in_pack, offset),) = (row[:5] for row in entries(store_path, mine))
    # Stored deflate blocks: the entry is the bytes plus a few framing bytes per 64 KiB.
    assert (kind, int(size), int(offset)) == ("blob", len(data), 12)
    assert len(data) < int(in_pack) < len(data) * 1.01
    assert disk_store.get("s/t", "big.bin") == data
    assert cat_blob(store_path, oid) == data
    fsck(store_path)


def test_a_compressible_big_blob_stays_a_loose_object(disk_store: Store, store_path: Path) -> None:
    data = compressible(3 << 20)
    oid = disk_store.put("s/t", {"big.log": data}).artifact("big.log").oid
    assert (store_path / "objects" / oid[:2] / oid[2:]).is_file()
    assert disk_store.get("s/t", "big.log") == data


def test_a_blob_pack_write_that_fails_leaves_no_file(
    disk_store: Store, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def full_disk(fd: int, data: bytes) -> None:
        calls.append(len(data))
        if len(calls) == 2:  # the entry went out; the disk fills before the pack is sealed
            raise OSError(errno.ENOSPC, "No space left on device")
        os.write(fd, data)

    monkeypatch.setattr(gitstore.backend.blobpack, "write_all", full_disk)
    before = sorted(p.name for p in (store_path / "objects").rglob("*"))
    with pytest.raises((OSError, InputError)):
        disk_store.put("s/t", {"big.bin": os.urandom(3 << 20)})
    monkeypatch.undo()
    assert len(calls) == 2
    assert sorted(p.name for p in (store_path / "objects").rglob("*")) == before
    assert disk_store.heads() == {}


def test_a_pull_copies_the_stored_entry_and_stock_git_agrees(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    with Store.open(tmp_path / "src.git", create=True) as src:
        oid = src.put("big/one", {"blob.bin": data}).artifact("blob.bin").oid
    with Store.open(tmp_path / "dst.git", create=True) as dst:
        result = R.pull(dst, str(tmp_path / "src.git"))
        assert [u.task for u in result.updated] == ["big/one"]
        assert dst.get("big/one", "blob.bin") == data
    rows = [r for p in packs(tmp_path / "dst.git") for r in entries(tmp_path / "dst.git", p)]
    (row,) = [r for r in rows if r[0] == oid]
    # Copied as it was stored (level 0), not deflated again on the way.
    assert int(row[3]) < len(data) * 1.01
    fsck(tmp_path / "dst.git")


def _big_pack(tmp_path: Path) -> bytes:
    """The bytes of a pack holding one 3 MiB random blob (made by a store)."""
    with Store.open(tmp_path / "src.git", create=True) as src:
        src.put("big/one", {"blob.bin": os.urandom(3 << 20)})
    (pack,) = [
        p
        for p in (tmp_path / "src.git" / "objects" / "pack").glob("*.pack")
        if p.stat().st_size > (3 << 20)
    ]
    return pack.read_bytes()


@pytest.mark.parametrize("ending", ["finished", "aborted"])
def test_a_pack_cut_off_midway_leaves_no_file(tmp_path: Path, ending: str) -> None:
    data = _big_pack(tmp_path)
    dst = tmp_path / "dst.git"
    Store.open(dst, create=True).close()
    before = sorted(p.name for p in (dst / "objects").rglob("*"))
    indexer = IndexPack(str(dst))
    for i in range(0, len(data) // 2, 1 << 16):
        indexer.write(data[i : i + (1 << 16)])
    if ending == "finished":  # the remote hung up: index-pack sees the pack end early
        with pytest.raises(CorruptTransferError), transport_errors("remote"):
            indexer.finish()
    else:  # the transfer failed on our side
        indexer.abort()
    assert sorted(p.name for p in (dst / "objects").rglob("*")) == before


def test_a_pack_fed_whole_is_in_place_and_stock_git_reads_it(tmp_path: Path) -> None:
    data = _big_pack(tmp_path)
    dst = tmp_path / "dst.git"
    Store.open(dst, create=True).close()
    indexer = IndexPack(str(dst))
    for i in range(0, len(data), 1 << 16):
        indexer.write(data[i : i + (1 << 16)])
    indexer.finish()
    names = sorted(p.name for p in (dst / "objects" / "pack").iterdir())
    assert len(names) == 2 and names[0].startswith("pack-") and names[1].endswith(".pack")
    assert git(dst, "verify-pack", str(dst / "objects" / "pack" / names[0])).returncode == 0
