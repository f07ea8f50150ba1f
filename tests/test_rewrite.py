"""Rewriting a task's chain (retention's and purge's primitive): numbers, metadata and URIs of kept
versions stay; dropped versions are refused as gone; nothing put meanwhile is lost; merges keep
their shape; stock git reads the result."""

from __future__ import annotations

import threading

import pytest
from support import fsck, git

from gitstore import Store
from gitstore.errors import ConflictError, UsageError, VersionNotFoundError
from gitstore.remote.merge import merge_heads
from gitstore.rewrite import Edit, Tombstone, rewrite_chain


def _chain(store: Store, n: int, task: str = "s/t") -> list[str]:
    """``n`` versions of ``task``, each with a log and a diff; their commits, oldest first."""
    out = []
    for i in range(1, n + 1):
        v = store.put(
            task,
            {"log.log": f"log {i}\n", "diff.patch": f"diff {i}\n"},
            message=f"run {i}",
            metadata={"i": i},
            run_id=f"r{i}",
        )
        out.append(v.commit)
    return out


def test_dropping_versions_keeps_numbers_metadata_and_messages(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 5)
    before = {c: store.show(f"s/t@{c}") for c in commits}
    done = rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=commits[-1],
        plan={commits[1]: Edit(drop=True, why="keep-last 3"), commits[2]: Edit(drop=True)},
        by="retention",
    )
    log = store.log("s/t")
    assert [v.version for v in log] == [5, 4, 1]
    for v in log:
        old = next(b for b in before.values() if b.version == v.version)
        assert (v.metadata, v.message, v.run_id, v.created_at) == (
            old.metadata,
            old.message,
            old.run_id,
            old.created_at,
        )
        assert [(a.name, a.oid) for a in v.artifacts] == [(a.name, a.oid) for a in old.artifacts]
    # v1 was before the first dropped version: untouched. v4 and v5 were rebuilt.
    assert log[-1].commit == commits[0]
    assert log[1].parents == (commits[0],)
    assert set(done.mapping) == set(commits[1:])
    assert store.show("s/t@v4").version == 4
    # Authors, dates and messages stay: git's own log is the old one less the dropped versions.
    fmt = "--format=%an|%ad|%cn|%cd|%B%x00"
    old_log = git(store.path, "log", fmt, commits[-1]).stdout.split("\0")
    new_log = git(store.path, "log", fmt, "refs/artifacts/s/t").stdout.split("\0")
    assert new_log == [e for e in old_log if "|run 2\n" not in e and "|run 3\n" not in e]
    fsck(store.path)


def test_old_uris_of_kept_versions_resolve_to_the_same_bytes(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 4)
    uri = store.show(f"s/t@{commits[2]}").artifact("log.log").uri
    rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=commits[-1],
        plan={commits[1]: Edit(drop=True)},
        by="retention",
    )
    assert store.get(uri) == b"log 3\n"
    moved = store.show(f"s/t@{commits[2]}")
    assert moved.commit != commits[2] and moved.version == 3
    assert store.show(f"s/t@{commits[2][:10]}").commit == moved.commit
    assert store.show("s/t@v3").commit == moved.commit


def test_a_dropped_version_is_refused_as_gone_never_another(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 3)
    uri = store.show(f"s/t@{commits[1]}").artifact("log.log").uri
    rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=commits[-1],
        plan={commits[1]: Edit(drop=True, why="keep-last 2")},
        by="retention",
    )
    with pytest.raises(VersionNotFoundError, match=r"v2\) is gone: dropped by retention on .*"):
        store.get(uri)
    with pytest.raises(VersionNotFoundError, match="keep-last 2"):
        store.show(f"s/t@{commits[1]}")
    with pytest.raises(VersionNotFoundError):
        store.show("s/t@v2")


def test_the_latest_version_cannot_be_dropped(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 2)
    with pytest.raises(UsageError, match="latest version"):
        rewrite_chain(
            store.versions,
            "s",
            "t",
            expect=commits[-1],
            plan={commits[-1]: Edit(drop=True)},
            by="retention",
        )
    assert store.versions.head("s", "t") == commits[-1]


def test_expired_artifacts_are_recorded_in_the_kept_versions_manifest(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 2)
    rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=commits[-1],
        plan={commits[0]: Edit(expire={"log.log": "logs 7d"})},
        by="retention",
    )
    v1 = store.show("s/t@v1")
    assert [a.name for a in v1.artifacts] == ["diff.patch"]
    (gone,) = v1.removed
    assert (gone.name, gone.kind, gone.why, gone.size) == ("log.log", "expired", "logs 7d", 6)
    with pytest.raises(Exception, match=r"log.log expired on \d{4}-\d\d-\d\d \(logs 7d\)"):
        v1.artifact("log.log")
    assert store.show("s/t").removed == ()
    fsck(store.path)


def test_a_tombstone_replaces_the_bytes_and_says_so(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 2)
    stone = Tombstone(b"purged\n", "leaked token")
    rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=commits[-1],
        plan={c: Edit(replace={"log.log": stone}) for c in commits},
        by="purge",
    )
    for n in (1, 2):
        v = store.show(f"s/t@v{n}")
        assert store.get(f"s/t@v{n}", "log.log") == b"purged\n"
        (gone,) = v.removed
        assert (gone.kind, gone.why) == ("purged", "leaked token")
    fsck(store.path)


def test_a_version_put_during_the_rewrite_is_kept(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 3)
    landed: list[int] = []
    versions = store.versions
    original_cas = versions.refs.cas
    other = threading.Event()

    def cas_after_a_put(name: str, old: str | None, new: str) -> bool:
        # Another writer puts between the rewrite's read of the head and its swap, once.
        if threading.current_thread() is threading.main_thread() and not other.is_set():
            other.set()
            t = threading.Thread(target=lambda: landed.append(store.put("s/t", {"x": "4"}).version))
            t.start()
            t.join()
        return original_cas(name, old, new)

    versions.refs.cas = cas_after_a_put  # type: ignore[method-assign]
    try:
        rewrite_chain(
            versions,
            "s",
            "t",
            expect=commits[-1],
            plan={commits[1]: Edit(drop=True)},
            by="retention",
        )
    finally:
        del versions.refs.cas
    assert landed == [4]
    assert [v.version for v in store.log("s/t")] == [4, 3, 1]
    assert store.get("s/t", "x") == b"4"
    fsck(store.path)


def test_a_head_that_no_longer_builds_on_the_plan_is_refused(disk_store: Store) -> None:
    store = disk_store
    commits = _chain(store, 3)
    rewrite_chain(store.versions, "s", "t", expect=commits[-1], plan={commits[0]: Edit()}, by="x")
    rewrite_chain(
        store.versions,
        "s",
        "t",
        expect=commits[-1],
        plan={commits[1]: Edit(drop=True)},
        by="retention",
    )
    with pytest.raises(ConflictError, match="plan again"):
        rewrite_chain(
            store.versions,
            "s",
            "t",
            expect=commits[-1],
            plan={commits[0]: Edit(drop=True)},
            by="retention",
        )


def test_merged_histories_keep_their_shape_among_kept_versions(disk_store: Store) -> None:
    store = disk_store
    base = _chain(store, 1)[0]
    left = store.put("s/t", {"a": "left"}).commit
    store.versions.refs.cas("refs/artifacts/s/t", left, base)
    right1 = store.put("s/t", {"b": "right"}).commit
    right2 = store.put("s/t", {"b": "right 2"}).commit
    merge, _ = merge_heads(store.versions, left, right2)
    assert store.versions.refs.cas("refs/artifacts/s/t", right2, merge)
    top = store.put("s/t", {"c": "top"}).commit
    done = rewrite_chain(
        store.versions, "s", "t", expect=top, plan={right1: Edit(drop=True)}, by="retention"
    )
    new_merge = done.mapping[merge]
    assert new_merge is not None
    # Same parents in the same order, each the rewritten commit of the old one.
    assert store.versions.parents(new_merge) == [
        done.mapping.get(p) or p for p in store.versions.parents(merge)
    ]
    assert done.mapping[right2] in store.versions.parents(new_merge)
    assert store.versions.parents(done.mapping[right2] or "") == [base]
    assert store.show(f"s/t@{merge}").version == 4
    assert [v.version for v in store.log("s/t")] == [5, 4, 3, 2, 1]
    fsck(store.path)


def test_dropping_one_side_of_a_merge_leaves_one_parent(disk_store: Store) -> None:
    store = disk_store
    base = _chain(store, 1)[0]
    left = store.put("s/t", {"a": "left"}).commit
    store.versions.refs.cas("refs/artifacts/s/t", left, base)
    right = store.put("s/t", {"b": "right"}).commit
    merge, _ = merge_heads(store.versions, left, right)
    assert store.versions.refs.cas("refs/artifacts/s/t", right, merge)
    done = rewrite_chain(
        store.versions, "s", "t", expect=merge, plan={right: Edit(drop=True)}, by="retention"
    )
    # The dropped side stands for its parent, base, which the other side already descends from.
    assert store.versions.parents(done.new_head) == [left]
    assert store.get("s/t", "b") == b"right"
    fsck(store.path)
