"""Space comes back: expunge removes named unreachable objects at once, gc rewrites packs so the
bytes no ref reaches are gone from disk, both beside live writers, with stock git as the judge."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import writer_proc as wp
from support import fsck, git

from gitstore import Store, UsageError
from gitstore.backend.objects import hash_bytes


def _store(path: Path) -> Store:
    """A store whose new objects are zlib level 0 (stored blocks): the raw bytes of an artifact
    appear in the files that hold it, so a test can look for them on disk."""
    Store.open(path, create=True).close()
    git(path, "config", "gitstore.compression", "0")
    return Store.open(path)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                if needle in f.read():
                    hits.append(os.path.relpath(path, root))
    return hits


def _age_all(store_path: Path, seconds: float) -> None:
    old = time.time() - seconds
    for dirpath, _dirs, files in os.walk(store_path / "objects"):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))


def _has(store_path: Path, oid: str) -> bool:
    return git(store_path, "cat-file", "-e", oid, check=False).returncode == 0


SECRET = b"token=ghp_" + b"S" * 36 + b"\n"


# -- expunge ---------------------------------------------------------------------------------


def test_expunge_removes_a_packed_blob_no_ref_reaches_and_keeps_the_rest(
    store_path: Path,
) -> None:
    with _store(store_path) as store:
        store.put("s/leak", {"log.txt": SECRET, "keep.txt": b"kept beside it\n"})
        store.put("s/other", {"a.txt": b"another task\n"})
        oid = hash_bytes(SECRET).oid
        store.rm_task("s/leak")
        assert _files_holding(store_path / "objects", SECRET)
        report = store.expunge([oid])
        assert report.objects == 1
        assert report.packs_rewritten >= 1
        assert report.bytes_freed > 0
        assert _files_holding(store_path, SECRET) == []
        assert not _has(store_path, oid)
        assert store.get("s/other", "a.txt") == b"another task\n"
    fsck(store_path)
    for idx in (store_path / "objects" / "pack").glob("*.idx"):
        git(store_path, "verify-pack", str(idx))


def test_expunge_removes_a_loose_big_blob(store_path: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(SECRET * ((3 << 20) // len(SECRET)))
    with _store(store_path) as store:
        oid = store.put("s/big", {"big.bin": big}).artifact("big.bin").oid
        store.put("s/other", {"a.txt": b"x\n"})
        assert (store_path / "objects" / oid[:2] / oid[2:]).exists()
        store.rm_task("s/big")
        report = store.expunge([oid])
        assert report.objects == 1
        assert report.bytes_freed >= 3 << 20
        assert not (store_path / "objects" / oid[:2] / oid[2:]).exists()
        assert _files_holding(store_path / "objects", SECRET) == []
    fsck(store_path)


def test_expunge_refuses_an_object_a_ref_reaches_and_removes_nothing(store_path: Path) -> None:
    with _store(store_path) as store:
        store.put("s/live", {"log.txt": SECRET})
        before = sorted(p.name for p in (store_path / "objects").rglob("*") if p.is_file())
        with pytest.raises(UsageError, match="still reachable"):
            store.expunge([hash_bytes(SECRET).oid])
        after = sorted(p.name for p in (store_path / "objects").rglob("*") if p.is_file())
        assert before == after
        assert store.get("s/live", "log.txt") == SECRET
    fsck(store_path)


def test_expunge_refuses_what_is_not_an_object_id(store_path: Path) -> None:
    with _store(store_path) as store, pytest.raises(UsageError, match="not an object id"):
        store.expunge(["HEAD"])


def test_expunge_in_a_pack_git_deltified_keeps_the_delta_made_on_it(store_path: Path) -> None:
    """git gc stores similar blobs as deltas; removing the base must not break the delta."""
    base = b"".join(b"line %05d of a long log that repeats itself\n" % i for i in range(2000))
    secret = base + SECRET
    kept = base + b"the fixed version, without the token\n"
    with _store(store_path) as store:
        store.put("s/leak", {"log.txt": secret})
        store.put("s/fixed", {"log.txt": kept})
    git(store_path, "repack", "-a", "-d", "-f", "--window=10", "--depth=10")
    verify = git(store_path, "verify-pack", "-v", *map(str, store_path.glob("objects/pack/*.idx")))
    assert "chain length" in verify.stdout  # git did make deltas
    secret_oid = hash_bytes(secret).oid
    with Store.open(store_path) as store:
        store.rm_task("s/leak")
        store.expunge([secret_oid])
        assert not _has(store_path, secret_oid)
        assert store.get("s/fixed", "log.txt", verify=True) == kept
    fsck(store_path)


def test_expunge_in_memory_forgets_the_object_and_refuses_a_reachable_one() -> None:
    store = Store.memory()
    store.put("s/leak", {"log.txt": SECRET})
    store.put("s/live", {"a.txt": b"live\n"})
    with pytest.raises(UsageError):
        store.expunge([hash_bytes(b"live\n").oid])
    store.rm_task("s/leak")
    assert store.expunge([hash_bytes(SECRET).oid]).objects == 1
    assert store.get("s/live", "a.txt") == b"live\n"


@pytest.mark.slow
def test_a_put_that_reuses_the_object_during_expunge_keeps_it(
    store_path: Path, tmp_path: Path
) -> None:
    """A writer found the blob stored (so it will not write it again) and has not moved its ref
    yet: expunge must wait for it, then find the blob reachable and refuse."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 << 20))
    with _store(store_path) as store:
        oid = store.put("s/old", {"big.bin": big}).artifact("big.bin").oid
        store.rm_task("s/old")
    ready, release = tmp_path / "ready", tmp_path / "release"
    spec = f'{{"big.bin": {{"path": "{big}"}}}}'
    writer = wp.spawn("pause", store_path, "s/new", "before-cas", ready, release, spec)
    outcome: list[BaseException | object] = []
    try:
        wp.wait_for_file(ready, [writer])

        def run() -> None:
            with Store.open(store_path) as s:
                try:
                    outcome.append(s.expunge([oid]))
                except BaseException as e:  # the test inspects it
                    outcome.append(e)

        remover = threading.Thread(target=run)
        remover.start()
        remover.join(1.0)
        assert remover.is_alive(), "expunge did not wait for the pinned writer"
        assert (store_path / "objects" / oid[:2] / oid[2:]).exists()
        release.touch()
        rc, _, err = wp.finish(writer)
        assert rc == 0, err
        remover.join(30)
    finally:
        wp.kill(writer)
    assert len(outcome) == 1 and isinstance(outcome[0], UsageError), outcome
    with Store.open(store_path) as store:
        assert store.get("s/new", "big.bin", verify=True) == big.read_bytes()
        assert store.verify() == []
    fsck(store_path)
