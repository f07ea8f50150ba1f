"""Push, pull, clone, sync and bundles between stores on one machine, with stock git as a peer.

Remotes here are paths and ``file://`` URLs (dulwich's local client); the network transports are
in test_remote_transports.py. Stock git is the second opinion: it clones, fetches and pushes task
refs, and ``git fsck --strict`` checks every store afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import compressible, fsck, git, open_store

from gitstore import (
    CorruptTransferError,
    NotAStoreError,
    NotFoundError,
    RemoteUnreachableError,
    Store,
    UsageError,
)
from gitstore import remote as R
from gitstore.backend.objects import DiskObjects
from gitstore.backend.refs import DiskRefs


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def ls_remote(path: Path) -> dict[str, str]:
    out = git(path, "for-each-ref", "--format=%(objectname) %(refname)").stdout
    return {ref: sha for sha, ref in (line.split() for line in out.splitlines())}


def refs_of(store: Store) -> dict[str, str]:
    return store.heads()


def history(store: Store, key: str) -> set[str]:
    return {v.commit for v in store.log(key)}


# -- remotes in config -----------------------------------------------------------------------


def test_remote_add_ls_rm_in_git_config(disk_store: Store, tmp_path: Path) -> None:
    R.add_remote(disk_store, "origin", str(tmp_path / "x.git"))
    R.add_remote(disk_store, "backup", "ssh://git@example.invalid/srv/x.git")
    assert [r.name for r in R.remotes(disk_store)] == ["backup", "origin"]
    # Stock git sees the same remote with the task refspec.
    assert disk_store.path is not None
    got = git(disk_store.path, "config", "--get", "remote.origin.fetch").stdout.strip()
    assert got == "+refs/artifacts/*:refs/artifacts/*"
    with pytest.raises(UsageError):
        R.add_remote(disk_store, "origin", "elsewhere")
    assert R.remove_remote(disk_store, "backup").url.startswith("ssh://")
    with pytest.raises(NotFoundError):
        R.remove_remote(disk_store, "backup")
    assert [r.name for r in R.remotes(disk_store)] == ["origin"]


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x.lock"])
def test_remote_names_are_checked(disk_store: Store, name: str) -> None:
    with pytest.raises(UsageError):
        R.add_remote(disk_store, name, "/tmp/x.git")


def test_a_url_with_a_password_is_refused(disk_store: Store) -> None:
    with pytest.raises(UsageError, match="password"):
        R.add_remote(disk_store, "origin", "https://me:secret@example.invalid/x.git")


# -- push ------------------------------------------------------------------------------------


def test_push_to_an_empty_bare_repo_then_stock_git_fetches(
    disk_store: Store, tmp_path: Path
) -> None:
    disk_store.put("s/t1", {"a.txt": "one", "d/b.bin": b"\0\1"})
    disk_store.put("s/t2", {"a.txt": "two"})
    remote = bare(tmp_path / "remote.git")
    git(remote, "config", "receive.fsckObjects", "true")
    result = R.push(disk_store, str(remote))
    assert [u.task for u in result.updated] == ["s/t1", "s/t2"]
    assert result.objects > 0 and not result.refused
    assert ls_remote(remote) == {f"refs/artifacts/{k}": v for k, v in disk_store.heads().items()}
    fsck(remote)
    # Stock git fetches the task refs into a fresh repository; gitstore reads what it got.
    mirror = bare(tmp_path / "mirror.git")
    git(mirror, "fetch", "-q", str(remote), "+refs/artifacts/*:refs/artifacts/*")
    with Store.open(mirror) as m:
        assert m.heads() == disk_store.heads()
        assert m.get("s/t1", "d/b.bin") == b"\0\1"
    fsck(mirror)
    # Nothing new: nothing sent.
    again = R.push(disk_store, str(remote))
    assert (again.updated, again.objects, again.up_to_date) == ([], 0, 2)


def test_push_refuses_a_task_the_remote_is_ahead_on_and_pushes_the_rest(
    disk_store: Store, tmp_path: Path
) -> None:
    disk_store.put("s/t1", {"a.txt": "one"})
    disk_store.put("s/t2", {"a.txt": "two"})
    remote = bare(tmp_path / "remote.git")
    R.push(disk_store, str(remote))
    other, _ = R.clone(str(remote), tmp_path / "other.git")
    other.put("s/t1", {"a.txt": "theirs"})
    R.push(other, "origin")
    disk_store.put("s/t1", {"a.txt": "ours"})
    disk_store.put("s/t2", {"a.txt": "ours too"})
    before = ls_remote(remote)
    result = R.push(disk_store, str(remote))
    assert [r.task for r in result.refused] == ["s/t1"]
    assert "pull first" in result.refused[0].reason
    assert [u.task for u in result.updated] == ["s/t2"]
    after = ls_remote(remote)
    assert after["refs/artifacts/s/t1"] == before["refs/artifacts/s/t1"]  # never rewound
    assert after["refs/artifacts/s/t2"] == disk_store.heads()["s/t2"]
    other.close()


def test_push_and_pull_move_only_the_asked_tasks_and_never_other_refs(
    disk_store: Store, tmp_path: Path
) -> None:
    # A store living inside an ordinary project repository: its branch must not move.
    project = tmp_path / "project"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "README").write_text("hi\n")
    subprocess.run(["git", "-C", str(project), "add", "README"], check=True)
    subprocess.run(["git", "-C", str(project), "commit", "-qm", "init"], check=True)
    branch = git(project / ".git", "rev-parse", "HEAD").stdout.strip()
    disk_store.put("a/t1", {"x": "1"})
    disk_store.put("a/t2", {"x": "2"})
    disk_store.put("b/t1", {"x": "3"})
    result = R.push(disk_store, str(project), ["a/t1", "b"])
    assert sorted(u.task for u in result.updated) == ["a/t1", "b/t1"]
    refs = ls_remote(project / ".git")
    assert "refs/artifacts/a/t2" not in refs
    assert refs["refs/heads/" + git(project / ".git", "branch", "--show-current").stdout.strip()]
    assert git(project / ".git", "rev-parse", "HEAD").stdout.strip() == branch
    with Store.open(tmp_path / "c.git", create=True) as c:
        got = R.pull(c, str(project), ["b"])
        assert [u.task for u in got.updated] == ["b/t1"]
        assert list(c.heads()) == ["b/t1"]
        assert not any(r.startswith("refs/heads") for r in ls_remote(tmp_path / "c.git"))


# -- pull and merge --------------------------------------------------------------------------


def diverge(tmp_path: Path) -> tuple[Store, Store, Path]:
    """Two stores that share v1 of s/t, then each write a version of their own."""
    a = Store.open(tmp_path / "a.git", create=True)
    a.put("s/t", {"same.txt": "base", "both.txt": "base", "keep.txt": "base"})
    remote = bare(tmp_path / "remote.git")
    R.add_remote(a, "origin", str(remote))
    R.push(a)
    b, _ = R.clone(str(remote), tmp_path / "b.git")
    a.put("s/t", {"both.txt": "from a", "only-a.txt": "a", "keep.txt": "changed by a"})
    time.sleep(1.05)  # commit times have one-second resolution: make b's head the newer one
    b.put("s/t", {"both.txt": "from b", "only-b.txt": "b"})
    return a, b, remote


def test_pull_of_diverged_task_makes_a_merge_version(tmp_path: Path) -> None:
    a, b, _remote = diverge(tmp_path)
    va, vb = a.show("s/t"), b.show("s/t")
    R.push(b)
    result = R.pull(a)
    (merge,) = result.merged
    assert merge.conflicts == ("both.txt",)
    m = a.show("s/t")
    assert m.commit == merge.new
    assert set(m.parents) == {va.commit, vb.commit}
    assert m.version == 3
    assert m.conflicts == ("both.txt",)
    names = {x.name for x in m.artifacts}
    assert names == {"same.txt", "both.txt", "keep.txt", "only-a.txt", "only-b.txt"}
    assert a.get("s/t", "both.txt") == b"from b"  # b's head is newer
    assert a.get("s/t", "keep.txt") == b"changed by a"  # only a changed it: not a conflict
    # The loser's bytes stay in history.
    assert a.get(f"s/t@{va.commit}", "both.txt") == b"from a"
    assert history(a, "s/t") >= {va.commit, vb.commit}
    assert a.path is not None
    fsck(a.path)
    a.close()
    b.close()


def test_two_machines_merging_the_same_heads_make_the_same_commit(tmp_path: Path) -> None:
    a, b, _remote = diverge(tmp_path)
    # Each pulls the other's head from a snapshot taken before either merged: both merge the
    # same two heads, on their own machine.
    assert a.path is not None and b.path is not None
    shutil.copytree(a.path, tmp_path / "a-then.git")
    shutil.copytree(b.path, tmp_path / "b-then.git")
    ra = R.pull(a, str(tmp_path / "b-then.git"))
    rb = R.pull(b, str(tmp_path / "a-then.git"))
    assert ra.merged[0].new == rb.merged[0].new
    assert a.heads() == b.heads()
    # ... and a later sync has nothing left to do.
    again = R.pull(a, b.path)
    assert again.merged == [] and again.updated == []
    a.close()
    b.close()


def test_pull_fast_forwards_and_is_incremental(tmp_path: Path) -> None:
    a = Store.open(tmp_path / "a.git", create=True)
    for i in range(20):
        a.put(f"s/t{i}", {"x.txt": f"{i}"})
    b, first = R.clone(a.path or "", tmp_path / "b.git")
    assert len(first.updated) == 20
    a.put("s/t3", {"y.txt": "new"})
    second = R.pull(b)
    assert [(u.task, u.action) for u in second.updated] == [("s/t3", "fast-forward")]
    assert second.up_to_date == 19
    # Only the new version's objects came: blob, manifest, two trees, commit.
    assert 0 < second.objects <= 6
    assert b.heads() == a.heads()
    a.close()
    b.close()


def test_pull_keeps_local_versions_when_ahead(tmp_path: Path) -> None:
    a = Store.open(tmp_path / "a.git", create=True)
    a.put("s/t", {"x": "1"})
    b, _ = R.clone(a.path or "", tmp_path / "b.git")
    b.put("s/t", {"x": "2"})
    head = b.heads()["s/t"]
    result = R.pull(b)
    assert result.up_to_date == 1 and b.heads()["s/t"] == head
    a.close()
    b.close()


def test_sync_makes_both_sides_agree(tmp_path: Path) -> None:
    a, b, _remote = diverge(tmp_path)
    R.sync(a)
    R.sync(b)
    R.sync(a)
    assert a.heads() == b.heads()
    assert ls_remote(_remote)["refs/artifacts/s/t"] == a.heads()["s/t"]
    a.close()
    b.close()


def test_stock_git_push_into_a_store(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    src = Store.open(tmp_path / "src.git", create=True)
    src.put("s/u", {"y": "2"})
    src.put("z/w", {"y": "3"})
    assert src.path is not None and disk_store.path is not None
    git(src.path, "push", "-q", disk_store.path, "refs/artifacts/*:refs/artifacts/*")
    assert set(disk_store.heads()) == {"s/t", "s/u", "z/w"}
    assert disk_store.get("z/w", "y") == b"3"
    listed = git(disk_store.path, "for-each-ref", "--format=%(refname)", "refs/artifacts")
    assert sorted(r.removeprefix("refs/artifacts/") for r in listed.stdout.split()) == sorted(
        disk_store.heads()
    )
    fsck(disk_store.path)
    src.close()


def test_stock_git_clone_mirror_of_a_store(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    assert disk_store.path is not None
    subprocess.run(
        ["git", "clone", "-q", "--mirror", disk_store.path, str(tmp_path / "m.git")], check=True
    )
    with Store.open(tmp_path / "m.git") as m:
        assert m.heads() == disk_store.heads()


def test_file_url_works_like_a_path(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    remote = bare(tmp_path / "r.git")
    R.push(disk_store, f"file://{remote}")
    assert ls_remote(remote) == {"refs/artifacts/s/t": disk_store.heads()["s/t"]}


# -- clone -----------------------------------------------------------------------------------


def test_clone_records_origin_and_copies_every_task(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    disk_store.put("s/u", {"x": "2"})
    assert disk_store.path is not None
    c, result = R.clone(disk_store.path, tmp_path / "c.git")
    assert c.heads() == disk_store.heads()
    assert R.remotes(c) == [R.Remote("origin", disk_store.path)]
    assert len(result.updated) == 2
    assert c.path is not None
    fsck(c.path)
    c.close()


def test_clone_of_nothing_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RemoteUnreachableError):
        R.clone(str(tmp_path / "missing.git"), tmp_path / "c.git")
    assert not (tmp_path / "c.git").exists()


# -- bundles ---------------------------------------------------------------------------------


def test_bundle_made_by_gitstore_is_read_by_stock_git(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    disk_store.put("s/t", {"x": "2"})
    disk_store.put("o/t", {"y": "3"})
    bundle = tmp_path / "b.bundle"
    R.bundle_create(disk_store, bundle, ["s"])
    other = bare(tmp_path / "o.git")
    verify = git(other, "bundle", "verify", str(bundle), check=False)
    assert verify.returncode == 0, verify.stderr
    git(other, "fetch", "-q", str(bundle), "+refs/artifacts/*:refs/artifacts/*")
    assert ls_remote(other) == {"refs/artifacts/s/t": disk_store.heads()["s/t"]}
    fsck(other)


def test_bundle_made_by_stock_git_is_imported(disk_store: Store, tmp_path: Path) -> None:
    src = Store.open(tmp_path / "src.git", create=True)
    src.put("s/t", {"x": "1"})
    src.put("s/u", {"x": "2"})
    assert src.path is not None
    bundle = tmp_path / "git.bundle"
    git(src.path, "bundle", "create", str(bundle), "--all")
    result = R.bundle_import(disk_store, bundle)
    assert sorted(u.task for u in result.updated) == ["s/t", "s/u"]
    assert disk_store.heads() == src.heads()
    assert disk_store.path is not None
    fsck(disk_store.path)
    src.close()


def test_a_damaged_bundle_is_refused_and_changes_nothing(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    heads = disk_store.heads()
    src = Store.open(tmp_path / "src.git", create=True)
    src.put("s/t", {"x": "2"})
    bundle = tmp_path / "x.bundle"
    R.bundle_create(src, bundle)
    data = bytearray(bundle.read_bytes())
    data[-30] ^= 0xFF  # inside the pack: its checksum no longer matches
    bundle.write_bytes(bytes(data))
    with pytest.raises(CorruptTransferError):
        R.bundle_import(disk_store, bundle)
    (tmp_path / "not.bundle").write_text("hello\n")
    with pytest.raises(CorruptTransferError):
        R.bundle_import(disk_store, tmp_path / "not.bundle")
    assert disk_store.heads() == heads
    src.close()


# -- errors ----------------------------------------------------------------------------------


def test_a_missing_path_is_unreachable(disk_store: Store, tmp_path: Path) -> None:
    disk_store.put("s/t", {"x": "1"})
    with pytest.raises(RemoteUnreachableError):
        R.push(disk_store, str(tmp_path / "nowhere.git"))
    with pytest.raises(RemoteUnreachableError):
        R.pull(disk_store, str(tmp_path / "nowhere.git"))


def test_a_folder_that_is_not_a_repository_is_not_a_store(
    disk_store: Store, tmp_path: Path
) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotAStoreError):
        R.pull(disk_store, str(tmp_path / "plain"))


def test_task_refs_that_are_not_versions_are_refused_before_any_ref_moves(
    disk_store: Store, tmp_path: Path
) -> None:
    remote = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(remote)], check=True)
    (remote / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(remote), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(remote), "commit", "-qm", "plain"], check=True)
    src = Store.open(tmp_path / "src.git", create=True)
    src.put("a/ok", {"x": "1"})
    assert src.path is not None
    git(src.path, "push", "-q", str(remote / ".git"), "refs/artifacts/*:refs/artifacts/*")
    git(remote / ".git", "update-ref", "refs/artifacts/b/bad", "HEAD")
    with pytest.raises(NotAStoreError, match="b/bad"):
        R.pull(disk_store, str(remote))
    assert disk_store.heads() == {}
    src.close()


def test_unknown_remote_name(disk_store: Store) -> None:
    with pytest.raises(NotFoundError):
        R.push(disk_store, "nosuchremote")
    with pytest.raises(UsageError, match="origin"):
        R.pull(disk_store)


def test_memory_store_has_no_remotes() -> None:
    with Store.memory() as s, pytest.raises(UsageError):
        R.remotes(s)


class RacingRefs(DiskRefs):
    """Disk refs that let another writer in once, between a read of a ref and its swap."""

    race: Callable[[], object] | None = None

    def cas(self, name: str, old: str | None, new: str) -> bool:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().cas(name, old, new)


class RacingObjects(DiskObjects):
    """Disk objects that let another writer in once, the next time an object is looked up."""

    race: Callable[[], object] | None = None

    def has(self, oid: str) -> bool:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().has(oid)


def test_a_put_racing_a_merge_pull_is_kept(tmp_path: Path) -> None:
    """A merge pull racing with a local put: the put is kept (CAS through the ref backend)."""
    a, b, _remote = diverge(tmp_path)
    a.close()
    a = open_store(tmp_path / "a.git", refs=RacingRefs)
    R.push(b)
    refs = a.versions.refs
    assert isinstance(refs, RacingRefs)
    # Another writer lands a put between the pull's read of the ref and its swap.
    refs.race = lambda: a.put("s/t", {"late.txt": "late"})
    R.pull(a)
    assert refs.race is None  # it did run
    late = [v for v in a.log("s/t") if "late.txt" in {x.name for x in v.artifacts}]
    assert late and a.get("s/t", "late.txt") == b"late"
    assert b.heads()["s/t"] in history(a, "s/t")
    a.close()
    b.close()


def test_push_refuses_versions_holding_secrets_unless_allowed(
    disk_store: Store, tmp_path: Path
) -> None:
    remote = bare(tmp_path / "r.git")
    disk_store.put("s/clean", {"log.txt": "nothing to see"})
    disk_store.put("s/leaky", {"log.txt": "key AKIAABCDEFGHIJKLMNOP here\n"})
    result = R.push(disk_store, str(remote))
    assert [u.task for u in result.updated] == ["s/clean"]
    (refusal,) = result.refused
    assert (refusal.task, refusal.kind) == ("s/leaky", "secrets")
    assert "log.txt:1" in refusal.reason and "AKIAABCDEFGHIJKLMNOP" not in refusal.reason
    assert "refs/artifacts/s/leaky" not in ls_remote(remote)
    # Once the remote holds a version, only the versions it lacks are scanned.
    allowed = R.push(disk_store, str(remote), allow_secrets=True)
    assert [u.task for u in allowed.updated] == ["s/leaky"]
    disk_store.put("s/leaky", {"more.txt": "clean"})
    assert [u.task for u in R.push(disk_store, str(remote)).updated] == ["s/leaky"]


def test_a_corrupt_object_on_the_remote_is_a_corrupt_transfer(
    disk_store: Store, tmp_path: Path
) -> None:
    src = Store.open(tmp_path / "src.git", create=True)
    v = src.put("s/t", {"big.bin": compressible(2 << 20)})  # big: stored as a loose object
    oid = v.artifact("big.bin").oid
    loose = tmp_path / "src.git" / "objects" / oid[:2] / oid[2:]
    data = loose.read_bytes()
    loose.chmod(0o644)
    loose.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptTransferError):
        R.pull(disk_store, str(tmp_path / "src.git"))
    assert disk_store.heads() == {}
    src.close()


def test_without_git_the_in_process_client_does_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where git is not installed, dulwich's local client and pack indexer carry the transfer."""
    a, b, _remote = diverge(tmp_path)
    (tmp_path / "no-git").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-git"))
    assert not R.push(b).refused
    assert R.pull(a).merged[0].conflicts == ("both.txt",)
    assert not R.push(a).refused
    R.pull(b)
    assert a.heads() == b.heads()
    a.close()
    b.close()


def test_a_remote_that_moves_during_a_push_is_never_rewound(tmp_path: Path) -> None:
    """The ref update carries the value the decision was made on: git refuses a stale one."""
    a = open_store(tmp_path / "a.git", objects=RacingObjects)
    a.put("s/t", {"x": "1"})
    remote = bare(tmp_path / "r.git")
    R.push(a, str(remote))
    b, _ = R.clone(str(remote), tmp_path / "b.git")
    b.put("s/t", {"x": "from b"})
    a.put("s/t", {"x": "from a"})
    objects = a.versions.objects
    assert isinstance(objects, RacingObjects)
    # The push decides from the remote's head (is it ours, in our history?); b's push lands
    # right then, after the remote's refs were read and before a's update reaches it.
    objects.race = lambda: R.push(b)
    result = R.push(a, str(remote))
    assert objects.race is None
    assert [(r.task, r.kind) for r in result.refused] == [("s/t", "rejected")]
    assert ls_remote(remote)["refs/artifacts/s/t"] == b.heads()["s/t"]
    # A sync pulls b's version in, merges, and then the push goes through.
    R.add_remote(a, "origin", str(remote))
    assert R.sync(a).refused == []
    assert ls_remote(remote)["refs/artifacts/s/t"] == a.heads()["s/t"]
    assert b.heads()["s/t"] in history(a, "s/t")
    a.close()
    b.close()


def test_a_missing_file_url_is_unreachable(disk_store: Store, tmp_path: Path) -> None:
    with pytest.raises(RemoteUnreachableError):
        R.pull(disk_store, f"file://{tmp_path}/nowhere.git")
