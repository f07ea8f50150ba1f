"""Many versions at once: ``Store.put_many``, ``Store.batch()`` and concurrent puts from threads.

The claims (issue 13, durable small puts): a batch lands as one pack with one ref move per task;
versions come back in order, the same task's versions build on each other; bad input is refused
before anything is written; each task's ref moves to a complete version or not at all, even when
the writer is SIGKILLed half-way through moving the refs; every put that returned is in history.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import writer_proc as wp
from support import fsck, git, open_store
from test_robust_crash import check_store, new_store

from gitstore import Artifact, InvalidNameError, PendingPut, Store, UsageError
from gitstore.backend.refs import DiskRefs


def _packs(store_path: Path) -> set[str]:
    return {p.name for p in (store_path / "objects" / "pack").glob("*.pack")}


def test_put_many_returns_the_versions_in_order_and_chains_a_task_given_twice(
    store: Store,
) -> None:
    versions = store.put_many(
        [
            ("s/a", {"x.txt": "a1"}),
            ("s/b", {"y.txt": "b1"}),
            ("s/a", {"z.txt": "a2"}),
        ],
        run_id="r1",
    )
    a1, b1, a2 = versions
    assert (a1.task, a1.version, a1.parents) == ("a", 1, ())
    assert (b1.task, b1.version) == ("b", 1)
    assert (a2.version, a2.parents) == (2, (a1.commit,))
    assert [x.name for x in a2.artifacts] == ["x.txt", "z.txt"]
    assert all(v.run_id == "r1" and v.created for v in versions)
    assert [v.commit for v in store.log("s/a")] == [a2.commit, a1.commit]
    assert store.get("s/a", "z.txt") == b"a2"


def test_put_many_lands_many_versions_as_one_pack(disk_store: Store, store_path: Path) -> None:
    disk_store.put("s/t0", {"first.txt": "x"})
    before = _packs(store_path)
    items = [(f"s/t{i % 5}", {"log.txt": f"line {i}\n"}) for i in range(40)]
    versions = disk_store.put_many(items)
    assert len(_packs(store_path) - before) == 1
    assert {v.task: v.version for v in versions} == {"t0": 9, "t1": 8, "t2": 8, "t3": 8, "t4": 8}
    fsck(store_path)
    assert git(store_path, "rev-list", "--count", "refs/artifacts/s/t0").stdout.strip() == "9"


def test_put_many_refuses_a_bad_item_before_writing_anything(
    disk_store: Store, store_path: Path
) -> None:
    disk_store.put("s/a", {"x.txt": "1"})
    heads, packs = disk_store.heads(), _packs(store_path)
    with pytest.raises(InvalidNameError, match=r"\.\."):
        disk_store.put_many([("s/a", {"y.txt": "2"}), ("s/b", {"../escape": "3"})])
    assert disk_store.heads() == heads
    assert _packs(store_path) == packs


def test_put_many_reports_an_unchanged_put_as_not_created(store: Store) -> None:
    v1 = store.put("s/a", {"x.txt": "same"})
    again, forced = store.put_many([("s/a", {"x.txt": "same"}), ("s/a", {"x.txt": "same"})])
    assert not again.created and again.commit == v1.commit
    assert forced.commit == v1.commit  # force was not asked for
    (made,) = store.put_many([("s/a", {"x.txt": "same"})], force=True)
    assert made.created and made.parents == (v1.commit,)


def test_a_clash_found_while_landing_fails_its_own_put_and_the_others_land(store: Store) -> None:
    # The second put of s/b makes "y.txt" a folder where the first made it a file: that is
    # only known once the first one's version is built, so the rest of the batch lands.
    with pytest.raises(InvalidNameError, match=r"y\.txt"):
        store.put_many(
            [("s/a", {"x.txt": "1"}), ("s/b", {"y.txt": "2"}), ("s/b", {"y.txt/z": "3"})]
        )
    assert store.get("s/a", "x.txt") == b"1"
    assert [v.version for v in store.log("s/b")] == [1]


def test_a_batch_lands_when_its_block_ends(store: Store) -> None:
    with store.batch() as b:
        first = b.put("s/a", {"x.txt": "1"}, message="one")
        second = b.put("s/a", {"y.txt": "2"})
        assert isinstance(first, PendingPut) and not first.done
        with pytest.raises(UsageError, match="has not landed"):
            _ = first.version
        assert store.heads() == {}  # nothing visible before the end of the block
    assert first.done and first.version.message == "one"
    assert second.version.parents == (first.version.commit,)
    assert store.show("s/a").commit == second.version.commit


def test_a_batch_whose_block_raises_lands_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="runner failed"), store.batch() as b:
        pending = b.put("s/a", {"x.txt": "1"})
        raise RuntimeError("runner failed")
    assert store.heads() == {}
    with pytest.raises(UsageError, match="has not landed"):
        _ = pending.version


def test_a_batch_reads_a_file_when_it_is_put_not_when_it_lands(
    store: Store, tmp_path: Path
) -> None:
    f = tmp_path / "result.json"
    f.write_text('{"step": 1}')
    with store.batch() as b:
        b.put("s/a", {"result.json": f})
        f.write_text('{"step": 2}')
    assert store.get("s/a", "result.json") == b'{"step": 1}'


def test_a_bad_put_in_a_batch_is_refused_at_once_and_the_rest_lands(store: Store) -> None:
    with store.batch() as b:
        b.put("s/a", {"x.txt": "1"})
        with pytest.raises(InvalidNameError):
            b.put("s/a", {".git/config": "2"})
    assert [v.version for v in store.log("s/a")] == [1]


class RacingRefs(DiskRefs):
    """Refs that let another writer move a ref once, just before a batch swaps its refs."""

    race: Any = None

    def cas_many(self, moves: Any) -> list[bool]:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().cas_many(moves)


def test_a_batch_that_loses_a_ref_to_another_writer_builds_on_its_version(
    store_path: Path,
) -> None:
    with open_store(store_path, refs=RacingRefs) as s, Store.open(store_path) as other:
        refs = s.versions.refs
        assert isinstance(refs, RacingRefs)
        refs.race = lambda: other.put("s/b", {"other.txt": "theirs"})
        a, b = s.put_many([("s/a", {"x.txt": "1"}), ("s/b", {"x.txt": "2"})])
        assert a.version == 1
        theirs = other.show("s/b@v1")
        assert b.version == 2 and b.parents == (theirs.commit,)
        assert [x.name for x in b.artifacts] == ["other.txt", "x.txt"]
    fsck(store_path)


def test_puts_from_many_threads_all_land(disk_store: Store, store_path: Path) -> None:
    errors: list[BaseException] = []
    made: list[tuple[str, str]] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            for i in range(15):
                v = disk_store.put(f"s/t{(w + i) % 3}", {f"w{w}.txt": f"{w}:{i}\n"})
                with lock:
                    made.append((f"s/t{(w + i) % 3}", v.commit))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for addr, commit in made:
        assert commit in {v.commit for v in disk_store.log(addr)}
    total = sum(len(disk_store.log(addr)) for addr in disk_store.heads())
    assert total == 6 * 15
    for addr in disk_store.heads():
        assert [v.version for v in disk_store.iter_versions(addr)][-1] == 1
    fsck(store_path)


def test_a_batch_killed_half_way_through_its_refs_leaves_each_task_whole_or_untouched(
    store_path: Path, tmp_path: Path
) -> None:
    new_store(store_path)
    with Store.open(store_path) as s:
        before = {f"k/t{i}": s.put(f"k/t{i}", {"step.txt": "before\n"}).commit for i in range(8)}
    ready = tmp_path / "ready"
    p = wp.spawn("batch-pause", store_path, "k", 8, ready)
    try:
        wp.wait_for_file(ready, [p])
    finally:
        wp.kill(p)
    moved = 0
    with Store.open(store_path) as s:
        for addr, old in before.items():
            head = s.show(addr)
            if head.commit == old:
                continue
            # Moved: to the batch's last version of this task, complete, on top of the old head.
            moved += 1
            assert head.version == 3
            assert s.get(addr, "step.txt") == f"batch step 2 of {addr[2:]}\n".encode()
            assert [v.version for v in s.iter_versions(addr)] == [3, 2, 1]
            assert s.log(addr)[-1].commit == old
    assert moved == 4, "the kill did not land half-way through the refs"
    check_store(store_path, [], [], "after a kill mid-batch")
    with Store.open(store_path) as s:
        again = s.put_many([(addr, {"after.txt": "x"}) for addr in before])
        assert all(v.created for v in again)
    fsck(store_path)


@pytest.mark.slow
def test_batch_writers_sigkilled_at_random_moments_lose_no_acknowledged_put(
    store_path: Path, tmp_path: Path
) -> None:
    """Three batch writers on shared tasks, each SIGKILLed at a seeded random moment."""
    new_store(store_path)
    rng = random.Random(20261130)
    go = tmp_path / "go"
    outs = [tmp_path / f"acks-{w}.jsonl" for w in range(3)]
    procs = [
        wp.spawn("batch", store_path, "kb", w, 4, 12, out, go, 20261130)
        for w, out in enumerate(outs)
    ]
    try:
        for out in outs:
            wp.wait_for_file(f"{out}.ready", procs)
        go.touch()
        start = time.monotonic()
        for at, i in sorted((rng.uniform(0.3, 2.0), i) for i in range(3)):
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            assert procs[i].poll() is None, procs[i].communicate()[1]
            wp.kill(procs[i])
    finally:
        for p in procs:
            wp.kill(p)
    acks = [a for out in outs for a in wp.read_acks(out)]
    assert len(acks) >= 12, "no batch landed before the kills: the test proved nothing"
    check_store(store_path, acks, acks, "batch writers killed")


def test_versions_built_as_raw_bytes_are_the_objects_dulwich_would_build(
    disk_store: Store, store_path: Path
) -> None:
    """The batch path writes trees and commits from raw bytes; git must read the same ids as
    dulwich's own serialisation gives (tree order with folders, modes, parents, trailers)."""
    from dulwich.objects import Commit, Tree

    v1 = disk_store.put("s/a", {"a.txt": "1"})
    v2 = disk_store.put(
        "s/a",
        {
            "b-c.txt": "x",
            "b/inner.txt": "y",
            "b.txt": "z",
            "tool.sh": Artifact(b"#!/bin/sh\n", executable=True),
        },
        message="two lines\n\nof message",
        metadata={"k": "v"},
    )
    for v in (v1, v2):
        commit = disk_store.versions.objects.get(v.commit)
        assert isinstance(commit, Commit)
        again = Commit()
        again.tree, again.parents = commit.tree, commit.parents
        again.author, again.committer = commit.author, commit.committer
        again.author_time, again.commit_time = commit.author_time, commit.commit_time
        again.author_timezone = again.commit_timezone = 0
        again.encoding, again.message = commit.encoding, commit.message
        assert again.id == commit.id  # dulwich serialises the same fields to the same bytes
        tree = disk_store.versions.objects.get(commit.tree.decode())
        assert isinstance(tree, Tree)
        rebuilt = Tree()
        for item in tree.iteritems():
            rebuilt.add(item.path, item.mode, item.sha)
        assert rebuilt.id == tree.id  # dulwich sorts entries as git does: same bytes
    names = git(store_path, "ls-tree", "-r", "--name-only", v2.commit).stdout.split()
    assert names == [
        ".gitstore/manifest.json",
        "a.txt",
        "b-c.txt",
        "b.txt",
        "b/inner.txt",
        "tool.sh",
    ]
    mode = git(store_path, "ls-tree", v2.commit, "tool.sh").stdout.split()[0]
    assert mode == "100755"
    fsck(store_path)
