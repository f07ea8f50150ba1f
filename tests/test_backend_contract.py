"""The backend contract: one suite run against the disk backends and their in-memory twins.

``ObjectBackend`` (``DiskObjects``, ``MemoryObjects``): has, get, add_blob, add_blob_stream,
add_objects, open_blob. ``RefBackend`` (``DiskRefs``, ``MemoryRefs``): get, cas, delete, children,
items. Everything above the backend (versions, the store, the remotes) relies on exactly this;
the disk-only cases at the end check what stock git sees.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from support import fsck, git

from gitstore import InputError, IntegrityError, Store
from gitstore._fs import acquire_lock, release_lock
from gitstore.backend.objects import CHUNK, DiskObjects, MemoryObjects, ObjectBackend
from gitstore.backend.refs import Busy, DiskRefs, MemoryRefs, RefBackend

A = "a" * 40
B = "b" * 40
C = "c" * 40


def git_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(params=["disk", "memory"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectBackend]:
    backend: ObjectBackend
    if request.param == "disk":
        Store.open(tmp_path / "s.git", create=True).close()
        backend = DiskObjects(str(tmp_path / "s.git" / "objects"), fsync=False, compression=1)
    else:
        backend = MemoryObjects()
    yield backend
    backend.close()


@pytest.fixture(params=["disk", "memory"])
def refs(request: pytest.FixtureRequest, tmp_path: Path) -> RefBackend:
    if request.param == "disk":
        Store.open(tmp_path / "s.git", create=True).close()
        return DiskRefs(str(tmp_path / "s.git"), fsync=False)
    return MemoryRefs()


# -- objects ---------------------------------------------------------------------------------


def test_has_is_false_for_an_object_never_added(objects: ObjectBackend) -> None:
    assert not objects.has(git_id(b"never added"))


def test_add_blob_returns_git_s_id_the_sha256_and_the_size(objects: ObjectBackend) -> None:
    info = objects.add_blob(b"hello\n")
    assert info == (git_id(b"hello\n"), hashlib.sha256(b"hello\n").hexdigest(), 6)
    assert objects.has(info.oid)


def test_adding_the_same_bytes_twice_gives_the_same_blob(objects: ObjectBackend) -> None:
    assert objects.add_blob(b"same") == objects.add_blob(b"same")


@pytest.mark.parametrize("size", [0, 10, 3 * CHUNK + 7])
def test_add_blob_stream_stores_what_add_blob_would(objects: ObjectBackend, size: int) -> None:
    data = os.urandom(size)
    seen: list[int] = []
    info = objects.add_blob_stream(io.BytesIO(data), size, "x.bin", seen.append)
    assert info == (git_id(data), hashlib.sha256(data).hexdigest(), size)
    assert sum(seen) == size
    with objects.open_blob(info.oid) as f:
        assert f.read() == data


def test_add_blob_stream_reads_only_size_bytes(objects: ObjectBackend) -> None:
    info = objects.add_blob_stream(io.BytesIO(b"keep this, not this"), 9, "x")
    assert info.oid == git_id(b"keep this")


def test_a_stream_shorter_than_its_size_is_an_input_error(objects: ObjectBackend) -> None:
    with pytest.raises(InputError, match=r"x\.log: changed while it was being stored"):
        objects.add_blob_stream(io.BytesIO(b"short"), 100, "x.log")


def test_add_objects_stores_trees_and_commits_that_get_returns(objects: ObjectBackend) -> None:
    blob = Blob.from_string(b"content")
    tree = Tree()
    tree.add(b"file.txt", 0o100644, blob.id)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"t <t@example>"
    commit.author_time = commit.commit_time = 1700000000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"m\n"
    objects.add_objects([blob, tree, commit])
    for obj in (blob, tree, commit):
        got = objects.get(obj.id.decode())
        assert (got.type_name, got.as_raw_string()) == (obj.type_name, obj.as_raw_string())
        assert objects.has(obj.id.decode())


def test_get_of_a_missing_object_is_an_integrity_error(objects: ObjectBackend) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        objects.get(git_id(b"nowhere"))


def test_open_blob_streams_a_large_blob_in_chunks(objects: ObjectBackend) -> None:
    data = os.urandom(3 * CHUNK + 1)
    info = objects.add_blob_stream(io.BytesIO(data), len(data), "big")
    with objects.open_blob(info.oid) as f:
        assert f.size == len(data)
        chunks = list(f.iter_chunks())
    assert len(chunks) > 1 and b"".join(chunks) == data


def test_open_blob_checks_the_sha256_when_asked(objects: ObjectBackend) -> None:
    info = objects.add_blob(b"bytes to check")
    with objects.open_blob(info.oid, info.sha256) as f:
        assert f.read() == b"bytes to check"
    with (
        pytest.raises(IntegrityError, match="sha256 does not match"),
        objects.open_blob(info.oid, "0" * 64) as f,
    ):
        f.read()


def test_open_blob_refuses_what_is_not_a_blob_and_what_is_missing(objects: ObjectBackend) -> None:
    tree = Tree()
    tree.add(b"f", 0o100644, objects.add_blob(b"x").oid.encode())
    objects.add_objects([tree])
    with pytest.raises(IntegrityError, match="not a blob"):
        objects.open_blob(tree.id.decode())
    with pytest.raises(IntegrityError, match="missing"):
        objects.open_blob(git_id(b"nowhere"))


# -- refs ------------------------------------------------------------------------------------


def test_get_is_none_for_a_ref_never_set(refs: RefBackend) -> None:
    assert refs.get("refs/artifacts/s/t") is None


def test_cas_from_none_creates_a_ref_that_must_not_exist(refs: RefBackend) -> None:
    assert refs.cas("refs/artifacts/s/t", None, A)
    assert refs.get("refs/artifacts/s/t") == A
    assert not refs.cas("refs/artifacts/s/t", None, B)
    assert refs.get("refs/artifacts/s/t") == A


def test_cas_moves_a_ref_only_from_the_value_it_holds(refs: RefBackend) -> None:
    refs.cas("refs/artifacts/s/t", None, A)
    assert not refs.cas("refs/artifacts/s/t", B, C)
    assert refs.get("refs/artifacts/s/t") == A
    assert refs.cas("refs/artifacts/s/t", A, B)
    assert refs.get("refs/artifacts/s/t") == B


def test_delete_removes_a_ref_only_from_the_value_it_holds(refs: RefBackend) -> None:
    refs.cas("refs/artifacts/s/t", None, A)
    assert not refs.delete("refs/artifacts/s/t", B)
    assert refs.get("refs/artifacts/s/t") == A
    assert refs.delete("refs/artifacts/s/t", A)
    assert refs.get("refs/artifacts/s/t") is None
    assert refs.children("refs/artifacts/") == []


def test_children_are_the_next_names_below_a_prefix_sorted_once_each(refs: RefBackend) -> None:
    for name in ("refs/artifacts/b/t1", "refs/artifacts/a/t2", "refs/artifacts/a/t1"):
        refs.cas(name, None, A)
    assert refs.children("refs/artifacts/") == ["a", "b"]
    assert refs.children("refs/artifacts/a/") == ["t1", "t2"]
    assert refs.children("refs/artifacts/none/") == []


def test_items_are_every_ref_below_a_prefix_and_no_other(refs: RefBackend) -> None:
    refs.cas("refs/artifacts/spec7/t", None, A)
    refs.cas("refs/artifacts/spec70/t", None, B)
    assert refs.items("refs/artifacts/spec7/") == {"refs/artifacts/spec7/t": A}
    assert refs.items("refs/artifacts/") == {
        "refs/artifacts/spec7/t": A,
        "refs/artifacts/spec70/t": B,
    }


# -- disk only: what stock git sees ------------------------------------------------------------


def test_disk_objects_are_read_by_stock_git(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.git", create=True).close()
    disk = DiskObjects(str(tmp_path / "s.git" / "objects"), fsync=True, compression=1)
    small = disk.add_blob(b"small\n")
    data = os.urandom(2 * CHUNK)
    big = disk.add_blob_stream(io.BytesIO(data), len(data), "big")
    disk.close()
    assert git(tmp_path / "s.git", "cat-file", "blob", small.oid).stdout == "small\n"
    assert git(tmp_path / "s.git", "cat-file", "-s", big.oid).stdout.strip() == str(len(data))
    fsck(tmp_path / "s.git")


def test_disk_refs_read_refs_packed_by_stock_git_and_delete_them(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.git", create=True).close()
    refs = DiskRefs(str(tmp_path / "s.git"), fsync=True)
    commit = Store.open(tmp_path / "s.git").put("s/t", {"a": "1"}).commit
    git(tmp_path / "s.git", "pack-refs", "--all")
    assert not (tmp_path / "s.git" / "refs" / "artifacts" / "s" / "t").exists()
    assert refs.get("refs/artifacts/s/t") == commit
    assert refs.children("refs/artifacts/") == ["s"]
    assert refs.delete("refs/artifacts/s/t", commit)
    assert git(tmp_path / "s.git", "for-each-ref", "refs/artifacts").stdout == ""


def test_disk_refs_list_refs_stock_git_wrote_at_any_depth_and_close_every_folder(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path / "s.git", create=True) as store:
        commit = store.put("s/t", {"a": "1"}).commit
    git(tmp_path / "s.git", "update-ref", "refs/artifacts/s/deep/er", commit)
    git(tmp_path / "s.git", "symbolic-ref", "refs/artifacts/s/sym", "refs/artifacts/s/t")
    folder = tmp_path / "s.git" / "refs" / "artifacts" / "s"
    (folder / "u.lock").write_text(f"{A}\n")  # a writer's lock: not a ref yet
    (folder / "junk").write_text("not an object id\n")
    refs = DiskRefs(str(tmp_path / "s.git"), fsync=False)
    open_before = len(os.listdir("/proc/self/fd"))
    assert refs.items("refs/artifacts/s/") == {
        "refs/artifacts/s/t": commit,
        "refs/artifacts/s/deep/er": commit,
    }
    assert len(os.listdir("/proc/self/fd")) == open_before


def test_a_disk_ref_whose_lock_a_live_writer_holds_is_busy(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.git", create=True).close()
    refs = DiskRefs(str(tmp_path / "s.git"), fsync=False)
    refs.cas("refs/artifacts/s/t", None, A)
    fd, lock = acquire_lock(str(tmp_path / "s.git" / "refs" / "artifacts" / "s" / "t"))
    try:
        with pytest.raises(Busy):
            refs.cas("refs/artifacts/s/t", A, B)
    finally:
        release_lock(fd, lock)
    assert refs.cas("refs/artifacts/s/t", A, B)
