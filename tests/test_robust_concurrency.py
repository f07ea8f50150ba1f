"""Concurrency with real processes: many writers at once lose nothing and corrupt nothing.

Every writer is a separate interpreter (tests/writer_proc.py) released by one start barrier, so
the puts truly overlap. A writer records each put only after it returned; the tests then walk the
history and demand that every acknowledged put is a version there, that version numbers along the
first-parent chain are exactly 1..N, and that stock ``git fsck --strict`` finds nothing wrong.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import writer_proc as wp
from support import fsck, git

from gitstore import Store

SEED = 20240611


def run_writers(
    store_path: Path,
    work: Path,
    jobs: list[tuple[str, str, int]],
    mix: str = "small",
    readers: list[str] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """Run one writer per ``(address, writer id, puts)`` at once, and a reader per address in
    ``readers`` for as long as the writers run; return every acknowledged put."""
    go, stop = work / "go", work / "stop"
    procs, readies, outs = [], [], []
    for addr, wid, count in jobs:
        out = work / f"acks-{wid}.jsonl"
        outs.append(out)
        readies.append(Path(f"{out}.ready"))
        procs.append(
            wp.spawn("put", store_path, addr, wid, count, out, go, mix, SEED, work / "scratch")
        )
    reader_procs = []
    for i, addr in enumerate(readers):
        ready = work / f"reader-{i}.ready"
        readies.append(ready)
        reader_procs.append(wp.spawn("read", store_path, addr, ready, go, stop))
    try:
        for ready in readies:
            wp.wait_for_file(ready, procs + reader_procs)
        go.touch()  # the barrier: every child is loaded and waiting; release them together
        for p in procs:
            rc, _, err = wp.finish(p, timeout=120)
            assert rc == 0, err
            assert err == "", err
        stop.touch()
        for p in reader_procs:
            rc, out, err = wp.finish(p, timeout=60)
            assert rc == 0, err
            assert int(out) > 0, "a reader never read anything while the writers ran"
    finally:
        for p in procs + reader_procs:
            wp.kill(p)
    acks = [a for out in outs for a in wp.read_acks(out)]
    for (_addr, wid, count), out in zip(jobs, outs, strict=True):
        assert [a["seq"] for a in wp.read_acks(out)] == list(range(1, count + 1)), wid
    return acks


def check_history(store: Store, acks: list[dict[str, Any]]) -> None:
    """Every acknowledged put is a version; numbering is exactly 1..N; nothing extra, no loss."""
    by_addr: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in acks:
        by_addr[a["addr"]].append(a)
    assert set(store.heads()) == set(by_addr)
    all_commits = [a["commit"] for a in acks]
    assert len(set(all_commits)) == len(all_commits), "two puts were acknowledged as one commit"
    for addr, mine in by_addr.items():
        chain = list(store.iter_versions(addr))
        n = len(mine)
        assert [v.version for v in chain] == list(range(n, 0, -1)), addr
        logged = store.log(addr)
        assert [v.commit for v in logged] == [v.commit for v in chain], "history is not linear"
        by_commit = {v.commit: v for v in chain}
        for a in mine:
            assert a["created"] is True
            v = by_commit.get(a["commit"])
            assert v is not None, f"acknowledged put {a} is not in the history of {addr}"
            assert v.version == a["version"]
            assert v.run_id == f"w{a['wid']}-{a['seq']}"
            for name, sha in a["expect"].items():
                assert v.artifact(name).sha256 == sha
                data = store.get(f"{addr}@{a['commit']}", name)
                assert hashlib.sha256(data).hexdigest() == sha
        per_writer: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in mine:
            per_writer[a["wid"]].append(a)
        head = chain[0]
        for wid, seq in per_writer.items():
            # A writer's later put started after its earlier one returned: it must come later.
            versions = [a["version"] for a in sorted(seq, key=lambda a: a["seq"])]
            assert versions == sorted(versions) and len(set(versions)) == len(versions), wid
            # Nobody's later put may have dropped this writer's latest artifact from the head.
            last = max(seq, key=lambda a: a["seq"])
            for name, sha in last["expect"].items():
                assert head.artifact(name).sha256 == sha, (wid, name)


@pytest.mark.slow
def test_eight_writers_on_one_task_and_eight_on_their_own_tasks_lose_nothing(
    store_path: Path, tmp_path: Path
) -> None:
    """16 processes at once with the default settings (gitstore.fsync on)."""
    Store.open(store_path, create=True).close()
    # The default must be what runs here: no gitstore.fsync in the store's config.
    assert git(store_path, "config", "--get", "gitstore.fsync", check=False).returncode == 1
    same = [("race/shared", f"s{i}", 30) for i in range(8)]
    own = [(f"race/own-{i}", f"o{i}", 10) for i in range(8)]
    acks = run_writers(store_path, tmp_path, same + own)
    assert len(acks) == 8 * 30 + 8 * 10
    with Store.open(store_path) as store:
        check_history(store, acks)
        assert len(store.log("race/shared")) == 240
        assert store.verify() == []
    out = git(store_path, "rev-list", "--count", "refs/artifacts/race/shared").stdout
    assert int(out) == 240
    fsck(store_path)


@pytest.mark.slow
def test_eight_writers_without_fsync_and_two_readers_on_one_task(
    store_path: Path, tmp_path: Path
) -> None:
    """gitstore.fsync off (faster, more overlap), with readers checking every version they see."""
    Store.open(store_path, create=True).close()
    git(store_path, "config", "gitstore.fsync", "false")
    same = [("race/shared", f"s{i}", 30) for i in range(8)]
    acks = run_writers(store_path, tmp_path, same, readers=["race/shared", "race/shared"])
    with Store.open(store_path) as store:
        check_history(store, acks)
        assert len(store.log("race/shared")) == 240
    fsck(store_path)


@pytest.mark.slow
def test_writers_of_big_blobs_and_packed_folders_on_one_task_lose_nothing(
    store_path: Path, tmp_path: Path
) -> None:
    """Mixed puts (3 MiB blobs from bytes and files, 70-file folders that go in one pack)."""
    Store.open(store_path, create=True).close()
    git(store_path, "config", "gitstore.fsync", "false")
    acks = run_writers(
        store_path, tmp_path, [("mix/shared", f"m{i}", 6) for i in range(4)], "mixed"
    )
    with Store.open(store_path) as store:
        check_history(store, acks)
    fsck(store_path)


def _same_folder(path: Path, tag: str) -> Path:
    path.mkdir()
    for i in range(100):
        (path / f"f{i:03d}.txt").write_text(f"{tag} fixture file {i}\n")
    return path


@pytest.mark.slow
def test_eight_processes_putting_the_same_folder_at_once_all_succeed(
    store_path: Path, tmp_path: Path
) -> None:
    """Identical folders (>= 64 new small blobs: one pack) put by 8 processes at once.

    Every writer stores the very same blobs; they must not trip over each other's objects or
    packs. The race is timing-dependent, so a pass proves little alone; the deterministic twin is
    ``test_a_put_of_the_same_content_as_a_paused_pack_writer_succeeds`` below.
    """
    Store.open(store_path, create=True).close()
    git(store_path, "config", "gitstore.fsync", "false")
    failures = []
    for rnd in range(1):
        folder = _same_folder(tmp_path / f"fixture-{rnd}", f"round {rnd}")
        go = tmp_path / f"go-{rnd}"
        procs, readies = [], []
        for w in range(8):
            spec = f'{{"fx": {{"path": "{folder}"}}}}'
            ready = tmp_path / f"ready-{rnd}-{w}"
            readies.append(ready)
            # "pause" at a point that never fires with release at once: a plain put after a barrier.
            procs.append(
                wp.spawn("pause", store_path, f"same/r{rnd}-w{w}", "barrier", ready, go, spec)
            )
        try:
            for ready in readies:
                wp.wait_for_file(ready, procs)
            go.touch()
            for w, p in enumerate(procs):
                rc, _, err = wp.finish(p)
                if rc != 0:
                    failures.append(f"round {rnd} writer {w}: {err.strip().splitlines()[-1]}")
        finally:
            for p in procs:
                wp.kill(p)
    assert not failures, failures
    with Store.open(store_path) as store:
        assert len(store.heads("same")) == 8
        for key in store.heads("same"):
            rnd = key.split("/r")[1].split("-")[0]
            got = store.get(key, "fx/f042.txt")
            assert got == f"round {rnd} fixture file 42\n".encode()
        assert store.verify() == []
    fsck(store_path)


@pytest.mark.slow
def test_a_put_of_the_same_content_as_a_paused_pack_writer_succeeds(
    store_path: Path, tmp_path: Path
) -> None:
    """A live writer is slow while writing a pack's index; another puts the very same files.

    The second put must not fail because the first one is busy with identical objects: it may
    wait for it or write its own copy, but it must return a version (within a bound).
    """
    Store.open(store_path, create=True).close()
    folder = _same_folder(tmp_path / "fixture", "paused")
    ready, release = tmp_path / "ready", tmp_path / "release"
    spec = f'{{"fx": {{"path": "{folder}"}}}}'
    slow = wp.spawn("pause", store_path, "same/slow", "pack-index", ready, release, spec)
    try:
        wp.wait_for_file(ready, [slow])
        pack_dir = store_path / "objects" / "pack"
        # The slow writer's .pack is in place and its .idx is not: the pack is not visible yet.
        assert {p.stem for p in pack_dir.glob("*.pack")} - {p.stem for p in pack_dir.glob("*.idx")}
        timer = threading.Timer(1.0, release.touch)
        timer.start()
        try:
            with Store.open(store_path) as store:
                v = store.put("same/fast", {"fx": folder})
        finally:
            timer.cancel()
            release.touch()
        rc, _, err = wp.finish(slow)
        assert rc == 0, err
    finally:
        wp.kill(slow)
    with Store.open(store_path) as store:
        assert store.get(f"same/fast@{v.commit}", "fx/f007.txt") == b"paused fixture file 7\n"
        assert store.get("same/slow", "fx/f007.txt") == b"paused fixture file 7\n"
        assert store.verify() == []
    fsck(store_path)


def test_a_store_opened_before_small_packs_are_merged_still_reads_them(store_path: Path) -> None:
    """The deterministic core of the readers' race above, with two handles in one process.

    A long-lived reader (a server, an agent runner) keeps its Store open while other writers'
    puts pile up small packs until one of them merges the packs and deletes the old ones. Every
    artifact must still read through the old handle: the objects are all in the merged pack.
    """
    from gitstore.backend.packs import MERGE_AT

    with Store.open(store_path, create=True) as writer:
        first = writer.put("spec/task", {"x.txt": "hello\n"})
        with Store.open(store_path) as reader:
            assert reader.get("spec/task", "x.txt") == b"hello\n"  # the reader knows the packs
            for i in range(MERGE_AT + 8):
                writer.put("spec/task", {f"f{i}.txt": f"{i}\n"})
            packs = list((store_path / "objects" / "pack").glob("*.pack"))
            assert len(packs) <= MERGE_AT, "no merge happened: the scenario was not hit"
            assert reader.get(first.artifact("x.txt").uri) == b"hello\n"
            assert reader.get("spec/task", "f3.txt") == b"3\n"
            assert [v.version for v in reader.log("spec/task")][-1] == 1
    fsck(store_path)
