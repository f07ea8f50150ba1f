"""Rewritten chains between stores: push replaces an old chain the records supersede, pull and
bundles bring the rewrite (and keep what was added on the old chain), and records crafted with
stock git are refused or can only ever drop data."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import fsck, git

from gitstore import RejectedVersionError, Store, VersionNotFoundError
from gitstore import remote as R
from gitstore.rewrite import Edit, rewrite_chain


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Store ``a`` with ``s/t`` v1..v4 (and ``s/u`` v1), and ``b`` cloned from it."""
    a = Store.open(tmp_path / "a", create=True)
    for i in range(1, 5):
        a.put("s/t", {"log.log": f"log {i}\n"}, message=f"run {i}")
    a.put("s/u", {"x": "u\n"})
    assert a.path is not None
    b, _ = R.clone(a.path, tmp_path / "b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def drop_v2(store: Store) -> str:
    """Drop v2 of ``s/t`` in ``store``; return the dropped commit."""
    v2 = store.show("s/t@v2").commit
    rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=store.versions.head("s", "t") or "",
        plan={v2: Edit(drop=True, why="keep-last 3")},
        by="retention",
    )
    return v2


def test_push_after_a_rewrite_replaces_the_old_chain(pair: tuple[Store, Store]) -> None:
    a, b = pair
    old_v3 = b.show("s/t@v3").commit
    dropped = drop_v2(b)
    pushed = R.push(b)
    assert not pushed.refused, pushed.refused
    assert a.heads() == b.heads()
    assert [v.version for v in a.log("s/t")] == [4, 3, 1]
    # The remote got the records: its own old URIs resolve, the dropped version is gone.
    assert a.show(f"s/t@{old_v3}").version == 3
    with pytest.raises(VersionNotFoundError, match="dropped by retention"):
        a.show(f"s/t@{dropped}")
    with pytest.raises(VersionNotFoundError):
        a.show("s/t@v2")
    fsck(a.path or "")


def test_pull_of_a_rewrite_keeps_versions_added_on_the_old_chain(
    pair: tuple[Store, Store],
) -> None:
    a, b = pair
    old_v4 = b.show("s/t@v4").commit
    dropped = drop_v2(a)
    b.put("s/t", {"mine.txt": "b's own\n"}, message="b's run")
    R.pull(b)
    assert [v.version for v in b.log("s/t")] == [5, 4, 3, 1]
    assert b.get("s/t", "mine.txt") == b"b's own\n"
    with pytest.raises(VersionNotFoundError, match="gone"):
        b.show(f"s/t@{dropped}")
    assert b.show(f"s/t@{old_v4}").commit == a.versions.head("s", "t")
    # And back: b's version on the rewritten chain is a fast-forward for a.
    assert not R.push(b).refused
    assert a.heads() == b.heads()
    for store in (a, b):
        fsck(store.path or "")


def test_a_pull_does_not_bring_dropped_versions_back(pair: tuple[Store, Store]) -> None:
    _, b = pair
    drop_v2(b)
    # a still holds the old chain: pulling it into b leaves b's chain as it is.
    R.pull(b)
    assert [v.version for v in b.log("s/t")] == [4, 3, 1]


def test_a_bundle_carries_the_rewrite(pair: tuple[Store, Store], tmp_path: Path) -> None:
    a, b = pair
    drop_v2(a)
    R.bundle_create(a, tmp_path / "x.bundle")
    R.bundle_import(b, tmp_path / "x.bundle")
    assert b.heads() == a.heads()
    assert [v.version for v in b.log("s/t")] == [4, 3, 1]
    fsck(b.path or "")


# -- records from elsewhere, crafted with stock git ------------------------------------------


def _records_commit(gitdir: str, entries: list[tuple[str, str, bytes]]) -> str:
    """A records commit made with git plumbing: ``(folder, name, bytes)`` files."""

    def blob(data: bytes) -> str:
        out = subprocess.run(
            ["git", f"--git-dir={gitdir}", "hash-object", "-w", "--stdin"],
            input=data,
            capture_output=True,
            check=True,
        )
        return out.stdout.decode().strip()

    def mktree(lines: list[str]) -> str:
        out = subprocess.run(
            ["git", f"--git-dir={gitdir}", "mktree"],
            input="".join(lines).encode(),
            capture_output=True,
            check=True,
        )
        return out.stdout.decode().strip()

    folders: dict[str, list[str]] = {}
    top: list[str] = []
    for folder, name, data in entries:
        line = f"100644 blob {blob(data)}\t{name}\n"
        if folder:
            folders.setdefault(folder, []).append(line)
        else:
            top.append(line)
    for folder, lines in folders.items():
        top.append(f"040000 tree {mktree(lines)}\t{folder}\n")
    tree = mktree(top)
    return git(gitdir, "commit-tree", tree, "-m", "records").stdout.strip()


def _purge_record(oid: str, **over: object) -> bytes:
    record = {
        "oid": oid,
        "sha256": "0" * 64,
        "size": 3,
        "at": "2026-01-01T00:00:00.000000Z",
        "why": "x",
        "tombstone": "gone\n",
    }
    record.update(over)
    return json.dumps(record).encode()


OID = "ab" + "c" * 38

HOSTILE: dict[str, Callable[[], list[tuple[str, str, bytes]]]] = {
    "a file beside the fan-out": lambda: [("", "README", b"hello\n")],
    "a fan-out folder of three characters": lambda: [
        ("abc", "c" * 37, _purge_record("abc" + "c" * 37))
    ],
    "a record that is not JSON": lambda: [("ab", "c" * 38, b"{not json")],
    "a record of another key": lambda: [("ab", "c" * 38, _purge_record("cd" + "c" * 38))],
    "an oversized record": lambda: [("ab", "c" * 38, _purge_record(OID, why="w" * 9000))],
    "a tombstone with control characters": lambda: [
        ("ab", "c" * 38, _purge_record(OID, tombstone="\x1b[2J"))
    ],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_purge_records_are_refused_and_nothing_moves(
    pair: tuple[Store, Store], case: str
) -> None:
    a, b = pair
    assert a.path is not None
    commit = _records_commit(a.path, HOSTILE[case]())
    git(a.path, "update-ref", "refs/gitstore/purges", commit)
    heads = b.heads()
    with pytest.raises(RejectedVersionError, match="refs/gitstore/purges"):
        R.pull(b)
    assert b.heads() == heads
    assert b.versions.purges.head() is None


def test_records_ref_naming_a_blob_is_refused(pair: tuple[Store, Store]) -> None:
    a, b = pair
    assert a.path is not None
    blob = subprocess.run(
        ["git", f"--git-dir={a.path}", "hash-object", "-w", "--stdin"],
        input=b"x",
        capture_output=True,
        check=True,
    ).stdout.decode()
    git(a.path, "update-ref", "refs/gitstore/rewrites", blob.strip())
    with pytest.raises(RejectedVersionError, match="not a commit"):
        R.pull(b)


def test_a_rewrite_record_cannot_redirect_to_another_tasks_version(
    pair: tuple[Store, Store],
) -> None:
    a, b = pair
    assert a.path is not None
    v2 = b.show("s/t@v2").commit
    foreign = b.show("s/u").commit
    record = {
        "spec": "s",
        "task": "t",
        "version": 2,
        "new": foreign,
        "at": "2026-01-01T00:00:00.000000Z",
        "by": "retention",
    }
    commit = _records_commit(a.path, [(v2[:2], v2[2:], json.dumps(record).encode())])
    git(a.path, "update-ref", "refs/gitstore/rewrites", commit)
    R.pull(b)
    # The record arrived, but leads nowhere: v2 is still v2, with its own bytes.
    assert b.versions.rewrites.get(v2) is not None
    assert b.show(f"s/t@{v2}").commit == v2
    assert b.get("s/t@v2", "log.log") == b"log 2\n"
    assert [v.version for v in b.log("s/t")] == [4, 3, 2, 1]
