"""Aliases: names for versions (`SPEC/TASK@best`), set and moved by compare-and-swap, listed by log
and show, carried by push, pull, clone and bundles, merged by one rule (the later setting wins),
and checked like any version when they arrive from elsewhere."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import fsck, git, open_store

from gitstore import InvalidNameError, NotFoundError, RejectedVersionError, Store
from gitstore import remote as R
from gitstore.backend.refs import DiskRefs
from gitstore.cli.main import cli


def run(store: Path | str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    return result.exit_code, result.stdout, result.stderr


def alias_ref(name: str, spec: str = "s", task: str = "t") -> str:
    return f"refs/gitstore/aliases/{spec}/{task}/{name}"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "a.git", create=True)
    for i in (1, 2, 3):
        s.put("s/t", {"x": str(i)})
    yield s
    s.close()


# -- naming a version --------------------------------------------------------------------------


def test_an_alias_names_a_version_as_stock_git_sees_it(s3: Store) -> None:
    v2 = s3.show("s/t@v2").commit
    a = s3.alias("s/t@v2", "best")
    assert (a.name, a.commit, a.version) == ("best", v2, 2)
    assert s3.show("s/t@best").commit == v2
    assert s3.get("gitstore://s/t@best/x") == b"2"
    # Stock git: the ref holds an annotated tag whose commit is the version.
    ref = alias_ref("best")
    assert git(s3.path or "", "cat-file", "-t", ref).stdout.strip() == "tag"
    assert git(s3.path or "", "rev-parse", f"{ref}^{{commit}}").stdout.strip() == v2
    fsck(s3.path or "")


def test_setting_an_alias_again_moves_it(s3: Store) -> None:
    s3.alias("s/t@v1", "best")
    s3.alias("s/t@v3", "best")
    assert s3.show("s/t@best").version == 3
    assert [(a.name, a.version) for a in s3.aliases("s/t")] == [("best", 3)]


def test_an_alias_without_a_revision_names_the_latest(s3: Store) -> None:
    assert s3.alias("s/t", "shipped").commit == s3.show("s/t").commit


@pytest.mark.parametrize("name", ["v3", "V12", "cafe", "abc", "0123", "HEAD", "latest", "Head"])
def test_names_that_read_as_revisions_are_refused(s3: Store, name: str) -> None:
    with pytest.raises(InvalidNameError):
        s3.alias("s/t@v1", name)
    code, _, err = run(s3.path or "", "alias", "s/t@v1", name)
    assert code == 3 and name in err
    assert git(s3.path or "", "for-each-ref", "refs/gitstore").stdout == ""


@pytest.mark.parametrize("name", ["best", "shipped", "v3-rc", "release.2", "deadbeef-ok"])
def test_names_that_cannot_be_revisions_are_taken(s3: Store, name: str) -> None:
    s3.alias("s/t@v1", name)
    assert s3.show(f"s/t@{name}").version == 1


def test_removing_an_alias_leaves_the_version(s3: Store) -> None:
    s3.alias("s/t@v2", "best")
    removed = s3.unalias("s/t", "best")
    assert removed.version == 2
    with pytest.raises(NotFoundError):
        s3.show("s/t@best")
    assert s3.aliases() == []
    assert s3.show("s/t@v2").version == 2
    with pytest.raises(NotFoundError):
        s3.unalias("s/t", "best")


def test_an_aliased_version_resolves_after_its_task_is_deleted(s3: Store) -> None:
    s3.alias("s/t@v1", "best")
    s3.rm_task("s/t")
    s3.gc(prune_after=0)
    assert s3.get("s/t@best", "x") == b"1"
    fsck(s3.path or "")


def test_versions_lists_the_aliased_commits_for_retention(s3: Store) -> None:
    s3.alias("s/t@v1", "best")
    s3.alias("s/t@v3", "shipped")
    s3.alias("s/t@v3", "gone")
    s3.unalias("s/t", "gone")
    expected = {"best": s3.show("s/t@v1").commit, "shipped": s3.show("s/t@v3").commit}
    assert s3.versions.aliases("s", "t") == expected


# -- compare-and-swap ----------------------------------------------------------------------------


def test_an_alias_moved_meanwhile_is_read_again_before_the_swap(tmp_path: Path) -> None:
    other: list[Store] = []

    class Interfering(DiskRefs):
        fired = False

        def cas(self, name: str, old: str | None, new: str) -> bool:
            if name.startswith("refs/gitstore/aliases/") and not Interfering.fired:
                Interfering.fired = True
                other[0].alias("s/t@v1", "best")  # another writer wins first
            return super().cas(name, old, new)

    s = open_store(tmp_path / "s.git", refs=Interfering)
    s.put("s/t", {"x": "1"})
    s.put("s/t", {"x": "2"})
    other.append(Store.open(tmp_path / "s.git"))
    a = s.alias("s/t@v2", "best")
    assert Interfering.fired
    # Ours was decided again on the other writer's value, and came after it.
    assert s.show("s/t@best").version == 2 and a.version == 2
    log = git(tmp_path / "s.git", "cat-file", "-p", alias_ref("best")).stdout
    assert "tagger" in log
    other[0].close()
    s.close()


def test_concurrent_setters_leave_one_whole_alias(s3: Store) -> None:
    errors: list[BaseException] = []

    def setter(rev: str) -> None:
        try:
            for _ in range(10):
                s3.alias(f"s/t@{rev}", "best")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=setter, args=(r,)) for r in ("v1", "v2", "v3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s3.show("s/t@best").version in (1, 2, 3)
    fsck(s3.path or "")


# -- log and show ----------------------------------------------------------------------------------


def test_log_and_show_list_aliases(s3: Store) -> None:
    s3.alias("s/t@v2", "best")
    s3.alias("s/t@v2", "shipped")
    path = s3.path or ""
    code, out, _ = run(path, "log", "s/t")
    (line,) = [x for x in out.splitlines() if x.startswith("v2")]
    assert "(best, shipped)" in line
    code, out, _ = run(path, "log", "s/t", "--json")
    by_version = {v["version"]: v for v in json.loads(out)}
    assert by_version[2]["aliases"] == ["best", "shipped"]
    assert "aliases" not in by_version[1]  # the field appears only where there are some
    code, out, _ = run(path, "show", "s/t@best")
    assert code == 0
    assert "aliases:" in out and "best shipped" in out
    _, out, _ = run(path, "show", "s/t@shipped", "--json")
    assert json.loads(out)["aliases"] == ["best", "shipped"]


def test_the_alias_commands(s3: Store) -> None:
    path = s3.path or ""
    code, out, _ = run(path, "alias", "s/t@v1", "best")
    assert code == 0 and out.startswith("s/t@best -> v1 ")
    code, out, _ = run(path, "alias", "ls", "--json")
    (doc,) = json.loads(out)
    assert {k: doc[k] for k in ("spec", "task", "name", "version")} == {
        "spec": "s",
        "task": "t",
        "name": "best",
        "version": 1,
    }
    code, out, _ = run(path, "alias", "ls", "s/t")
    assert out.split()[:2] == ["s/t@best", "v1"]
    code, out, _ = run(path, "alias", "rm", "s/t", "best")
    assert code == 0 and "removed s/t@best" in out
    code, _, err = run(path, "alias", "rm", "s/t", "best")
    assert code == 4 and "no alias" in err
    code, _, err = run(path, "show", "s/t@best")
    assert code == 4


# -- between machines -----------------------------------------------------------------------------


def test_clone_pull_and_push_carry_aliases(s3: Store, tmp_path: Path) -> None:
    s3.alias("s/t@v1", "best")
    b, result = R.clone(s3.path or "", tmp_path / "b.git")
    assert result.aliases == ["s/t@best"]
    assert b.show("s/t@best").version == 1
    s3.alias("s/t@v2", "best")
    assert R.pull(b).aliases == ["s/t@best"]
    assert b.show("s/t@best").version == 2
    b.alias("s/t@v3", "shipped")
    assert R.push(b).aliases == ["s/t@shipped"]
    assert s3.show("s/t@shipped").version == 3
    assert R.push(b).aliases == []  # nothing left to send
    fsck(tmp_path / "b.git")
    b.close()


def test_a_bundle_carries_aliases_and_stock_git_reads_it(s3: Store, tmp_path: Path) -> None:
    s3.alias("s/t@v2", "best")
    R.bundle_create(s3, tmp_path / "x.bundle")
    heads = subprocess.run(
        ["git", "bundle", "list-heads", str(tmp_path / "x.bundle")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tag = git(s3.path or "", "rev-parse", alias_ref("best")).stdout.strip()
    assert f"{tag} {alias_ref('best')}" in heads
    with Store.open(tmp_path / "c.git", create=True) as c:
        assert R.bundle_import(c, tmp_path / "x.bundle").aliases == ["s/t@best"]
        assert c.show("s/t@best").version == 2


@pytest.mark.parametrize("later_in", ["here", "there"])
def test_two_stores_that_disagree_keep_the_later_setting(
    s3: Store, tmp_path: Path, later_in: str
) -> None:
    b, _ = R.clone(s3.path or "", tmp_path / "b.git")
    first_store, later_store = (b, s3) if later_in == "here" else (s3, b)
    first = first_store.alias("s/t@v1", "best")
    time.sleep(1.05)  # tag times are whole seconds
    later = later_store.alias("s/t@v3", "best")
    assert later.set_at > first.set_at
    # Whoever pulls first, both end on the later setting.
    R.pull(s3, b.path)
    R.pull(b)
    assert s3.show("s/t@best").version == 3 and b.show("s/t@best").version == 3
    assert s3.aliases()[0].tag == b.aliases()[0].tag == later.tag
    b.close()


def test_the_same_second_is_decided_by_the_larger_tag_id(s3: Store, tmp_path: Path) -> None:
    from gitstore.aliases import later
    from gitstore.backend.tags import read_tag

    path = s3.path or ""
    v1, v2 = s3.show("s/t@v1").commit, s3.show("s/t@v2").commit
    tags = [read_tag(s3.versions.objects, mktag(path, c, "commit", "best")) for c in (v1, v2)]
    big = max(tags, key=lambda t: t.oid)
    assert later(tags[0], tags[1]) == later(tags[1], tags[0]) == big


def test_a_value_seen_always_loses_to_the_next_setting(s3: Store, tmp_path: Path) -> None:
    b, _ = R.clone(s3.path or "", tmp_path / "b.git")
    b.alias("s/t@v3", "best")
    R.pull(s3, b.path)
    seen = s3.aliases()[0]
    # Set again in the same second: stamped after the value it replaces, so it wins on sync.
    mine = s3.alias("s/t@v1", "best")
    assert mine.set_at > seen.set_at
    R.pull(b)
    assert b.show("s/t@best").version == 1
    b.close()


def test_a_removal_travels_and_an_old_value_does_not_come_back(s3: Store, tmp_path: Path) -> None:
    s3.alias("s/t@v2", "best")
    b, _ = R.clone(s3.path or "", tmp_path / "b.git")
    s3.unalias("s/t", "best")
    R.pull(s3, b.path)  # b still has the old value: it must not come back
    assert s3.aliases() == []
    R.pull(b)
    assert b.aliases() == []
    b.close()


def test_push_leaves_a_remote_alias_it_has_not_seen(s3: Store, tmp_path: Path) -> None:
    b, _ = R.clone(s3.path or "", tmp_path / "b.git")
    b.alias("s/t@v1", "best")
    s3.alias("s/t@v3", "best")  # later, but b has not seen it
    assert R.push(b).aliases == []
    assert s3.show("s/t@best").version == 3
    b.close()


# -- hostile input ---------------------------------------------------------------------------------


def mktag(gitdir: Path | str, target: str, kind: str, name: str, when: int = 1_700_000_000) -> str:
    body = (
        f"object {target}\ntype {kind}\ntag {name}\n"
        f"tagger x <x@example.com> {when} +0000\n\nmade by hand\n"
    )
    return git_input(gitdir, body, "mktag")


def git_input(gitdir: Path | str, data: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args],
        input=data,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_an_alias_naming_another_tasks_version_is_refused(s3: Store, tmp_path: Path) -> None:
    remote = tmp_path / "r.git"
    with Store.open(remote, create=True) as r:
        r.put("s/t", {"x": "1"})
        other = r.put("s/u", {"x": "other"}).commit
    git(remote, "update-ref", alias_ref("best"), mktag(remote, other, "commit", "best"))
    with Store.open(tmp_path / "c.git", create=True) as c:
        with pytest.raises(RejectedVersionError, match="refs/gitstore/aliases/s/t/best"):
            R.pull(c, str(remote))
        assert c.heads() == {}  # no ref moved, the tasks' neither
        assert c.aliases() == []


@pytest.mark.parametrize("case", ["direct-commit", "misnamed-tag", "tag-of-a-tree"])
def test_an_alias_ref_that_holds_no_alias_tag_is_refused(
    s3: Store, tmp_path: Path, case: str
) -> None:
    remote = tmp_path / "r.git"
    with Store.open(remote, create=True) as r:
        v1 = r.put("s/t", {"x": "1"}).commit
    if case == "direct-commit":
        value = v1
    elif case == "misnamed-tag":
        value = mktag(remote, v1, "commit", "other")
    else:
        tree = git(remote, "rev-parse", f"{v1}^{{tree}}").stdout.strip()
        value = mktag(remote, tree, "tree", "best")
    git(remote, "update-ref", alias_ref("best"), value)
    with Store.open(tmp_path / "c.git", create=True) as c:
        with pytest.raises(RejectedVersionError):
            R.pull(c, str(remote))
        assert c.heads() == {} and c.aliases() == []


def test_alias_refs_with_names_gitstore_refuses_are_ignored(s3: Store, tmp_path: Path) -> None:
    remote = tmp_path / "r.git"
    with Store.open(remote, create=True) as r:
        v1 = r.put("s/t", {"x": "1"}).commit
    git(remote, "update-ref", alias_ref("v2"), mktag(remote, v1, "commit", "v2"))
    git(remote, "update-ref", alias_ref("HEAD"), mktag(remote, v1, "commit", "HEAD"))
    with Store.open(tmp_path / "c.git", create=True) as c:
        result = R.pull(c, str(remote))
        assert result.aliases == []
        assert c.show("s/t@v1").commit == v1
        assert git(c.path or "", "for-each-ref", "refs/gitstore").stdout == ""


# -- after a rewrite of the chain ----------------------------------------------------------------


def test_an_alias_follows_its_version_through_a_rewrite(s3: Store) -> None:
    from gitstore.rewrite import Edit, rewrite_chain

    s3.put("s/t", {"log.log": "secret-ish"})  # v4
    v1, v4 = s3.show("s/t@v1").commit, s3.show("s/t@v4").commit
    s3.alias("s/t@v4", "best")
    done = rewrite_chain(
        s3.versions,
        "s",
        "t",
        expect=s3.show("s/t").commit,
        plan={v1: Edit(expire={"x": "test"}), v4: Edit(expire={"log.log": "test"})},
        by="test",
    )
    new = done.mapping[v4]
    assert new is not None and new != v4
    assert s3.show("s/t@best").commit == new
    # Stock git: the alias holds the new commit, so it no longer keeps the old one alive.
    path = s3.path or ""
    assert git(path, "rev-parse", f"{alias_ref('best')}^{{commit}}").stdout.strip() == new
    reach = git(path, "rev-list", "--all").stdout.split()
    assert v4 not in reach and new in reach
    fsck(path)


def test_an_alias_of_a_dropped_version_goes_with_it(s3: Store) -> None:
    from gitstore.rewrite import Edit, rewrite_chain

    v2 = s3.show("s/t@v2").commit
    s3.alias("s/t@v2", "old")
    rewrite_chain(
        s3.versions, "s", "t", expect=s3.show("s/t").commit, plan={v2: Edit(drop=True)}, by="test"
    )
    assert s3.aliases() == []
    assert v2 not in git(s3.path or "", "rev-list", "--all").stdout.split()


def test_pull_says_which_aliases_it_moved(s3: Store, tmp_path: Path) -> None:
    b, _ = R.clone(s3.path or "", tmp_path / "b.git")
    s3.alias("s/t@v2", "best")
    code, out, _ = run(tmp_path / "b.git", "pull")
    assert code == 0
    assert ["alias", "s/t@best"] in [line.split() for line in out.splitlines()]
    b.close()


def test_a_name_shaped_like_a_token_is_refused(s3: Store) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    code, _, err = run(s3.path or "", "alias", "s/t@v1", token)
    assert code == 20 and token not in err
    assert s3.aliases() == []
