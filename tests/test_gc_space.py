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


# -- gc --------------------------------------------------------------------------------------


def _count(store_path: Path) -> dict[str, int]:
    """``git count-objects -v`` as numbers: count, size, in-pack, packs, size-pack (KiB) ..."""
    out = git(store_path, "count-objects", "-v").stdout
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines())}


def _pack_of(data: bytes, i: int) -> bytes:
    return b"".join(b"%d %d %s\n" % (i, n, data) for n in range(64))


def test_gc_past_the_grace_period_removes_the_bytes_of_a_deleted_task(store_path: Path) -> None:
    with _store(store_path) as store:
        for i in range(20):
            store.put(f"s/keep{i}", {"log.txt": _pack_of(b"kept", i)})
        store.put("s/gone", {"log.txt": _pack_of(SECRET, 0)})
        for i in range(20):
            store.put(f"s/more{i}", {"log.txt": _pack_of(b"more", i)})
        store.rm_task("s/gone")
        before = _count(store_path)
        _age_all(store_path, 30 * 86400)
        report = store.gc()
        assert report.pruned_objects >= 4  # the blob, the manifest, the tree, the commit
        assert report.bytes_freed > 0
        assert _files_holding(store_path / "objects", SECRET) == []
        after = _count(store_path)
        assert after["packs"] == 1
        assert after["in-pack"] == before["in-pack"] - report.pruned_objects
        # stock git's own measure of the packs agrees with the bytes gc says it freed
        freed_kib = before["size-pack"] - after["size-pack"]
        assert abs(freed_kib * 1024 - report.bytes_freed) <= 8 * 1024
        for i in range(20):
            assert store.get(f"s/keep{i}", "log.txt") == _pack_of(b"kept", i)
    fsck(store_path)


def test_gc_keeps_unreachable_packed_objects_younger_than_the_grace_period(
    store_path: Path,
) -> None:
    with _store(store_path) as store:
        store.put("s/live", {"a.txt": b"live\n"})
        store.put("s/gone", {"log.txt": SECRET})
        store.rm_task("s/gone")
        oid = hash_bytes(SECRET).oid
        store.gc()  # young: the deleted version's objects stay, so its URI still resolves
        assert _has(store_path, oid)
        _age_all(store_path, 30 * 86400)
        store.put("s/live2", {"b.txt": b"newer\n"})
        report = store.gc()
        assert not _has(store_path, oid)
        assert report.pruned_objects >= 4
        assert store.get("s/live2", "b.txt") == b"newer\n"
    fsck(store_path)


def test_cruft_keeps_the_age_of_the_pack_it_came_from(store_path: Path) -> None:
    """Rewriting a young pack moves its unreachable objects to a cruft pack that is as old as
    the pack was: a gc a day does not make them young again."""
    with _store(store_path) as store:
        store.put("s/gone", {"log.txt": SECRET})
        store.put("s/live", {"a.txt": b"live\n"})
        store.rm_task("s/gone")
        _age_all(store_path, 10 * 86400)  # younger than the 14 days of grace
        store.gc()
        oid = hash_bytes(SECRET).oid
        assert _has(store_path, oid)
        ages = [time.time() - p.stat().st_mtime for p in store_path.glob("objects/pack/*.pack")]
        holder = [
            p
            for p in store_path.glob("objects/pack/*.idx")
            if oid in git(store_path, "verify-pack", "-v", str(p)).stdout
        ]
        assert len(holder) == 1
        assert time.time() - holder[0].with_suffix(".pack").stat().st_mtime > 9 * 86400, ages
        report = store.gc(prune_after=7 * 86400)
        assert not _has(store_path, oid)
        assert report.pruned_objects >= 1
    fsck(store_path)


def test_gc_merges_packs_of_8_mib_and_more(store_path: Path) -> None:
    with Store.open(store_path, create=True) as store:
        for name in ("a", "b"):
            store.put(f"s/{name}", {"r.bin": os.urandom(1 << 20) * 1, "q.bin": os.urandom(9 << 20)})
    # Two packs of 9 MiB and more, made by stock git from each task's objects.
    for name in ("a", "b"):
        objs = git(store_path, "rev-list", "--objects", f"refs/artifacts/s/{name}").stdout
        import subprocess

        subprocess.run(
            [
                "git",
                f"--git-dir={store_path}",
                "pack-objects",
                str(store_path / "objects/pack/pack"),
            ],
            input=objs,
            text=True,
            check=True,
            capture_output=True,
        )
    git(store_path, "prune-packed")
    big = [p for p in store_path.glob("objects/pack/*.pack") if p.stat().st_size >= 8 << 20]
    assert len(big) == 2
    with Store.open(store_path) as store:
        report = store.gc()
        assert report.merges == 1
        assert report.packs_rewritten >= 2
    packs = list(store_path.glob("objects/pack/*.pack"))
    assert len(packs) == 1
    git(store_path, "verify-pack", str(packs[0].with_suffix(".idx")))
    fsck(store_path)


def test_gc_keeps_the_base_of_a_live_delta_git_made(store_path: Path) -> None:
    base = b"".join(b"line %05d of a long log that repeats itself\n" % i for i in range(2000))
    with _store(store_path) as store:
        store.put("s/gone", {"log.txt": base + b"old\n"})
        store.put("s/live", {"log.txt": base + b"new\n"})
    git(store_path, "repack", "-a", "-d", "-f", "--window=10", "--depth=10")
    _age_all(store_path, 30 * 86400)
    with Store.open(store_path) as store:
        store.rm_task("s/gone")
        store.gc()
        assert store.get("s/live", "log.txt", verify=True) == base + b"new\n"
    fsck(store_path)


def test_gc_dry_run_reports_the_bytes_and_changes_nothing(store_path: Path) -> None:
    with _store(store_path) as store:
        store.put("s/live", {"a.txt": b"live\n"})
        store.put("s/gone", {"log.txt": SECRET * 100})
        store.rm_task("s/gone")
        _age_all(store_path, 30 * 86400)
        files = sorted(p.name for p in (store_path / "objects").rglob("*") if p.is_file())
        report = store.gc(dry_run=True)
        assert report.dry_run and report.bytes_freed > 0 and report.pruned_objects >= 4
        assert sorted(p.name for p in (store_path / "objects").rglob("*") if p.is_file()) == files


@pytest.mark.slow
@pytest.mark.parametrize("where", ["packed", "loose"])
def test_a_put_that_reuses_an_old_object_during_gc_keeps_it(
    store_path: Path, tmp_path: Path, where: str
) -> None:
    """A real writer process finds an old unreachable blob stored and is paused before its ref
    moves; gc with no grace period must not remove the blob from under it."""
    # 64 KiB: packed, and big enough that a put asks whether it is stored (DEDUP_MIN).
    data = os.urandom(2 << 20) if where == "loose" else os.urandom(64 << 10)
    src = tmp_path / "reused.bin"
    src.write_bytes(data)
    with _store(store_path) as store:
        store.put("s/old", {"reused.bin": src})
        store.put("s/other", {"a.txt": b"a\n"})
        store.rm_task("s/old")
    _age_all(store_path, 30 * 86400)
    ready, release = tmp_path / "ready", tmp_path / "release"
    spec = f'{{"reused.bin": {{"path": "{src}"}}}}'
    writer = wp.spawn("pause", store_path, "s/new", "before-cas", ready, release, spec)
    reports: list[object] = []
    try:
        wp.wait_for_file(ready, [writer])

        def run() -> None:
            with Store.open(store_path) as s:
                reports.append(s.gc(prune_after=0))

        gc = threading.Thread(target=run)
        gc.start()
        gc.join(1.0)
        assert gc.is_alive(), "gc removed objects while a writer was pinned"
        release.touch()
        rc, _, err = wp.finish(writer)
        assert rc == 0, err
        gc.join(60)
    finally:
        wp.kill(writer)
    assert len(reports) == 1
    with Store.open(store_path) as store:
        assert store.get("s/new", "reused.bin", verify=True) == data
        assert store.verify() == []
    fsck(store_path)
