"""Crashes: writers SIGKILLed at any moment, and lock files that dead or live writers leave.

The claims under test (DESIGN section 2, issue 3 "What it must withstand"):

* a writer killed at any point leaves the store readable, writable and ``git fsck --strict`` clean,
  and every put that returned before the kill is still in the history;
* temp files and ref locks left by a killed writer never block later writers for more than a few
  seconds (gitstore._fs: a lock nobody holds an flock on is stale after STALE_AFTER seconds);
* a lock held by a LIVE writer is never broken, however old its file looks.

Random kills are seeded (``GITSTORE_CRASH_SEED`` overrides the seed) so a failing run can be
replayed; the kill points that matter most are also hit deterministically by fault injection
(tests/writer_proc.py ``pause``: the child stops at a named point and is SIGKILLed there).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import writer_proc as wp
from support import fsck, git

from gitstore import ConflictError, Store
from gitstore.backend.refs import STALE_AFTER

SEED = int(os.environ.get("GITSTORE_CRASH_SEED", "8675309"))
# A put facing a dead writer's lock must get through well within this; it is a hang guard (the
# store's gitstore.casTimeout), not a speed claim.
BOUND = 20


def new_store(path: Path, *, cas_timeout: int = BOUND, fsync: bool = True) -> None:
    Store.open(path, create=True).close()
    git(path, "config", "gitstore.casTimeout", str(cas_timeout))
    if not fsync:
        git(path, "config", "gitstore.fsync", "false")


def held_by_someone(path: Path) -> bool:
    """True if a live process holds an flock on ``path`` (as gitstore's writers do)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        assert e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
        return True
    finally:
        os.close(fd)
    return False


def temp_files(store_path: Path) -> list[Path]:
    objects = store_path / "objects"
    return sorted([*objects.glob("tmp_*"), *objects.glob("pack/tmp_*")])


def check_store(
    store_path: Path, acks: list[dict[str, Any]], read_bytes: list[dict[str, Any]], why: str
) -> None:
    """Readable (every task's log and latest artifacts), every ack in its history, fsck clean."""
    with Store.open(store_path) as store:
        histories = {}
        for key in store.heads():
            log = store.log(key)
            chain = [v.version for v in store.iter_versions(key)]
            assert chain == list(range(len(chain), 0, -1)), (why, key, chain)
            assert len(log) == len(chain), (why, key)
            histories[key] = {v.commit: v for v in log}
            for art in log[0].artifacts:
                store.get(art.uri, verify=True)
        for a in acks:
            v = histories.get(a["addr"], {}).get(a["commit"])
            assert v is not None, f"{why}: acknowledged put lost: {a}"
            assert v.version == a["version"], why
            for name, sha in a["expect"].items():
                assert v.artifact(name).sha256 == sha, (why, name)
        for a in read_bytes:
            for name, sha in a["expect"].items():
                data = store.get(f"{a['addr']}@{a['commit']}", name)
                assert hashlib.sha256(data).hexdigest() == sha, (why, name)
    fsck(store_path)


def check_writable(store_path: Path, tag: str) -> None:
    """A new put to every task succeeds on top of its head (stale locks get broken)."""
    with Store.open(store_path) as store:
        for key, head in store.heads().items():
            before = store.show(key)
            v = store.put(key, {"after-crash.txt": f"{tag}\n"})
            assert v.created and v.parents == (head,) and v.version == before.version + 1, key
            assert store.get(key, "after-crash.txt") == f"{tag}\n".encode()


# -- random kills ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_writers_sigkilled_at_random_moments_lose_no_acknowledged_put(
    store_path: Path, tmp_path: Path
) -> None:
    """Three rounds of 4 writers (small puts, 3 MiB blobs from bytes and files, 70-file
    folders), each SIGKILLed at a seeded random moment; after every round the store is checked
    and written to."""
    new_store(store_path)
    acks: list[dict[str, Any]] = []
    outs: list[Path] = []
    for rnd in range(3):
        rng = random.Random(f"{SEED}-{rnd}")
        why = f"seed {SEED} round {rnd}"
        go = tmp_path / f"go-{rnd}"
        jobs = [
            ("crash/shared", f"r{rnd}a"),
            ("crash/shared", f"r{rnd}b"),
            (f"crash/own-{rnd % 2}", f"r{rnd}c"),
            ("crash/big", f"r{rnd}d"),
        ]
        procs, round_outs = [], []
        for addr, wid in jobs:
            out = tmp_path / f"acks-{wid}.jsonl"
            round_outs.append(out)
            seed = f"{SEED}-{rnd}"
            procs.append(
                wp.spawn("put", store_path, addr, wid, 0, out, go, "mixed", seed, tmp_path / "s")
            )
        try:
            for out in round_outs:
                wp.wait_for_file(f"{out}.ready", procs)
            go.touch()
            start = time.monotonic()
            for at, p in sorted((rng.uniform(0.05, 1.2), i) for i, p in enumerate(procs)):
                time.sleep(max(0.0, at - (time.monotonic() - start)))
                assert procs[p].poll() is None, procs[p].communicate()[1]
                wp.kill(procs[p])
        finally:
            for p in procs:
                wp.kill(p)
        fresh = [a for out in round_outs for a in wp.read_acks(out)]
        acks += fresh
        outs += round_outs
        check_store(store_path, acks, fresh, why)
        check_writable(store_path, why)
    assert len(acks) >= 4, "the writers never got a put through: the test proved nothing"
    # Temp files of dead writers are cleaned by gc once old (it never touches live ones).
    leftovers = temp_files(store_path)
    for t in leftovers:
        assert not held_by_someone(t), t
        old = time.time() - 2 * 3600
        os.utime(t, (old, old))
    with Store.open(store_path) as store:
        store.gc()
        assert store.verify() == []
    assert temp_files(store_path) == []
    check_store(store_path, acks, [], f"seed {SEED} after gc")


# -- kills at chosen points -----------------------------------------------------------------------


def kill_at(store_path: Path, tmp_path: Path, addr: str, point: str, artifacts: Any) -> None:
    """Run one put that stops at ``point``, and SIGKILL it there."""
    ready = tmp_path / f"ready-{point}"
    p = wp.spawn("pause", store_path, addr, point, ready, "-", json.dumps(artifacts))
    try:
        wp.wait_for_file(ready, [p])
    finally:
        wp.kill(p)


def _v1(store_path: Path) -> str:
    with Store.open(store_path) as store:
        return store.put("kill/task", {"first.txt": "v1\n"}).commit


@pytest.mark.parametrize("form", ["own-pack", "loose"])
def test_kill_while_a_big_blob_is_half_written(store_path: Path, tmp_path: Path, form: str) -> None:
    new_store(store_path)
    v1 = _v1(store_path)
    big = tmp_path / "big.bin"
    data = random.Random(SEED).randbytes(wp.BIG)
    # Random bytes do not compress: a pack of their own; hex digits do: a loose object.
    big.write_bytes(data if form == "own-pack" else data[: wp.BIG // 2].hex().encode())
    kill_at(store_path, tmp_path, "kill/task", "blob-write", {"big.bin": {"path": str(big)}})
    left = temp_files(store_path)
    assert left, "the kill did not leave a half-written temp file: the scenario was not hit"
    assert not any(held_by_someone(t) for t in left)
    check_store(store_path, [], [], "after a kill mid-blob")
    with Store.open(store_path) as store:
        assert store.show("kill/task").commit == v1  # the killed put is invisible
        v2 = store.put("kill/task", {"big.bin": big})  # the same blob, written again
        assert v2.parents == (v1,)
        assert store.get("kill/task", "big.bin", verify=True) == big.read_bytes()
    fsck(store_path)


def test_kill_after_the_objects_before_the_ref_moves(store_path: Path, tmp_path: Path) -> None:
    new_store(store_path)
    v1 = _v1(store_path)
    kill_at(store_path, tmp_path, "kill/task", "before-cas", {"x.txt": {"text": "lost\n"}})
    with Store.open(store_path) as store:
        assert store.show("kill/task").commit == v1
        v2 = store.put("kill/task", {"x.txt": "kept\n"})
        assert v2.parents == (v1,) and v2.version == 2
    check_store(store_path, [], [], "after a kill before the ref moved")


def test_kill_while_a_pack_is_in_place_without_its_index(store_path: Path, tmp_path: Path) -> None:
    new_store(store_path)
    v1 = _v1(store_path)
    folder = tmp_path / "fx"
    folder.mkdir()
    for i in range(wp.FOLDER_FILES):
        (folder / f"f{i}.txt").write_text(f"fixture {i}\n")
    kill_at(store_path, tmp_path, "kill/task", "pack-index", {"fx": {"path": str(folder)}})
    check_store(store_path, [], [], "after a kill mid-pack")
    with Store.open(store_path) as store:
        v2 = store.put("kill/task", {"fx": folder})  # the same objects again
        assert v2.parents == (v1,)
        assert store.get("kill/task", "fx/f7.txt") == b"fixture 7\n"
        assert store.verify() == []
    fsck(store_path)


def test_kill_inside_the_ref_lock_blocks_the_next_put_only_briefly(
    store_path: Path, tmp_path: Path
) -> None:
    new_store(store_path)
    v1 = _v1(store_path)
    kill_at(store_path, tmp_path, "kill/task", "in-lock", {"x.txt": {"text": "lost\n"}})
    lock = store_path / "refs" / "artifacts" / "kill" / "task.lock"
    assert lock.exists(), "the kill did not leave the ref's lock file: the scenario was not hit"
    assert not held_by_someone(lock)
    with Store.open(store_path) as store:
        v2 = store.put("kill/task", {"x.txt": "kept\n"})  # raises ConflictError after BOUND s
        assert v2.parents == (v1,)
        assert [v.version for v in store.log("kill/task")] == [2, 1]
    assert not lock.exists()
    check_store(store_path, [], [], "after a kill inside the ref lock")


# -- stale and live locks -------------------------------------------------------------------------


def _lock_path(store_path: Path, addr: str) -> Path:
    return store_path / "refs" / "artifacts" / f"{addr}.lock"


@pytest.mark.parametrize(("age", "task_exists"), [("old", True), ("old", False), ("fresh", True)])
def test_a_lock_file_nobody_holds_is_broken(store_path: Path, age: str, task_exists: bool) -> None:
    """A ``<ref>.lock`` with no flock holder, as a dead writer leaves it (old: past STALE_AFTER,
    fresh: just created, so it must first age), never blocks a put past the bound."""
    new_store(store_path)
    head = _v1(store_path) if task_exists else None
    addr = "kill/task" if task_exists else "kill/new-task"
    lock = _lock_path(store_path, addr)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"0" * 40 + b"\n")  # what a writer killed after writing its value leaves
    if age == "old":
        old = time.time() - 10 * STALE_AFTER
        os.utime(lock, (old, old))
    with Store.open(store_path) as store:
        v = store.put(addr, {"y.txt": "after the stale lock\n"})
        assert v.parents == ((head,) if head else ())
        assert store.show(addr).commit == v.commit
    assert not lock.exists()
    assert not list(lock.parent.glob("*~*")), "the broken lock's tomb was left behind"
    fsck(store_path)


def _hold(store_path: Path, tmp_path: Path, how: str) -> tuple[Any, Path, Path]:
    ready, release = tmp_path / "held", tmp_path / "release"
    p = wp.spawn("hold", store_path, "refs/artifacts/kill/task", ready, release, how)
    wp.wait_for_file(ready, [p])
    lock = _lock_path(store_path, "kill/task")
    assert Path(ready.read_text()) == lock
    return p, lock, release


def test_a_lock_of_a_sigkilled_holder_is_broken(store_path: Path, tmp_path: Path) -> None:
    new_store(store_path)
    v1 = _v1(store_path)
    p, lock, _ = _hold(store_path, tmp_path, "release")
    wp.kill(p)
    assert lock.exists() and not held_by_someone(lock)
    with Store.open(store_path) as store:
        v2 = store.put("kill/task", {"z.txt": "z\n"})
        assert v2.parents == (v1,)
    assert not lock.exists()
    fsck(store_path)


@pytest.mark.parametrize("how", ["release", "exit"])
def test_a_lock_held_by_a_live_process_is_never_broken(
    store_path: Path, tmp_path: Path, how: str
) -> None:
    """The live holder's lock file is made OLD, so only the flock tells it from a dead one; a put
    must give up with ConflictError (exit code 5) and leave it. Once the holder releases the lock
    (or exits without unlinking it: a stale lock), puts work again."""
    new_store(store_path, cas_timeout=1)
    v1 = _v1(store_path)
    p, lock, release = _hold(store_path, tmp_path, how)
    try:
        old = time.time() - 100 * STALE_AFTER
        os.utime(lock, (old, old))
        inode = lock.stat().st_ino
        with Store.open(store_path) as store:
            with pytest.raises(ConflictError) as caught:
                store.put("kill/task", {"z.txt": "z\n"})
            assert caught.value.exit_code == 5
            assert "kill/task" in str(caught.value)
            assert store.show("kill/task").commit == v1
        assert lock.exists() and lock.stat().st_ino == inode, "a live writer's lock was broken"
        assert held_by_someone(lock)
        release.touch()
        rc, _, err = wp.finish(p)
        assert rc == 0, err
    finally:
        wp.kill(p)
    assert lock.exists() == (how == "exit")
    git(store_path, "config", "gitstore.casTimeout", str(BOUND))
    with Store.open(store_path) as store:
        v2 = store.put("kill/task", {"z.txt": "z\n"})
        assert v2.parents == (v1,)
    assert not lock.exists()
    fsck(store_path)


def test_the_cli_reports_a_live_lock_as_a_conflict(store_path: Path, tmp_path: Path) -> None:
    """The same through the console script: exit code 5, one line on stderr."""
    cli = Path(sys.executable).parent / "gitstore"
    if not cli.exists():
        pytest.skip(f"no console script at {cli} (pip install -e . makes it)")
    new_store(store_path, cas_timeout=1)
    v1 = _v1(store_path)
    src = tmp_path / "z.txt"
    src.write_text("z\n")
    p, lock, release = _hold(store_path, tmp_path, "release")
    try:
        r = subprocess.run(
            [str(cli), "--store", str(store_path), "put", "kill/task", str(src)],
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
        assert r.returncode == 5, r.stderr
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("gitstore: "), r.stderr
        assert lock.exists() and held_by_someone(lock)
        release.touch()
        assert wp.finish(p)[0] == 0
    finally:
        wp.kill(p)
    with Store.open(store_path) as store:
        assert store.show("kill/task").commit == v1
