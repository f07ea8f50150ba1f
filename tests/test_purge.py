"""Purge: a leaked secret replaced by a tombstone in every version of every task that held it,
its bytes in no object of the store afterwards, and the purge carried to the stores that sync."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import fsck, git

from gitstore import NotFoundError, Store, UsageError
from gitstore import remote as R

SECRET = "ghp_" + "Q7w8E9r0" * 5
LEAK = f"step 1\ntoken={SECRET}\nstep 2\n".encode()


def objects_hold(gitdir: Path | str, needle: bytes) -> bool:
    """Does any object of the store (loose or packed, reachable or not) hold ``needle``?"""
    out = subprocess.run(
        ["git", f"--git-dir={gitdir}", "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout
    return needle in out


def leaky(path: Path) -> Store:
    """A store whose ``s/t`` holds the leak in v1 and v2 (kept along) and ``s/u`` in v1."""
    store = Store.open(path, create=True)
    store.put("s/t", {"log.log": LEAK, "diff.patch": "d1\n"}, message="run 1")
    store.put("s/t", {"diff.patch": "d2\n"}, message="run 2")
    store.put("s/t", {"log.log": "clean\n"}, message="run 3")
    store.put("s/u", {"out.txt": LEAK})
    store.put("s/other", {"x": "nothing to see\n"})
    return store


def test_the_dry_run_lists_every_holder_and_changes_nothing(tmp_path: Path) -> None:
    with leaky(tmp_path / "a") as store:
        heads = store.heads()
        report = store.purge("s/t@v1", "log.log", why="leaked token")
        assert not report.applied
        assert [(h.spec, h.task, h.version, h.names) for h in report.held_by] == [
            ("s", "t", 2, ("log.log",)),
            ("s", "t", 1, ("log.log",)),
            ("s", "u", 1, ("out.txt",)),
        ]
        assert "leaked token" in report.tombstone
        assert store.heads() == heads
        assert objects_hold(store.path or "", SECRET.encode())


def test_purge_leaves_the_bytes_in_no_object_and_scan_clean(tmp_path: Path) -> None:
    with leaky(tmp_path / "a") as store:
        assert store.scan()
        old_uri = store.show("s/t@v1").artifact("log.log").uri
        report = store.purge("s/t@v1", "log.log", why="leaked token", apply=True)
        assert report.applied and report.expunged == 1 and report.rewritten >= 3
        assert not objects_hold(store.path or "", SECRET.encode())
        assert store.scan() == []
        # Every version keeps its number and says what happened.
        assert [v.version for v in store.log("s/t")] == [3, 2, 1]
        v1 = store.show("s/t@v1")
        (gone,) = v1.removed
        assert (gone.name, gone.kind, gone.why) == ("log.log", "purged", "leaked token")
        assert b"purged by gitstore" in store.get("s/t@v1", "log.log")
        # The old URI resolves to the rewritten version: the tombstone, not the secret.
        assert store.get(old_uri) == store.get("s/t@v1", "log.log")
        assert store.get("s/t", "log.log") == b"clean\n"
        assert store.get("s/other", "x") == b"nothing to see\n"
        fsck(store.path or "")


def test_purge_by_sha256_and_by_blob_with_replacement_text(tmp_path: Path) -> None:
    with leaky(tmp_path / "a") as store:
        info = store.artifact("s/u", "out.txt")
        report = store.purge(sha256=info.sha256, apply=True, replace_with="removed\n")
        assert report.oid == info.oid
        assert store.get("s/u", "out.txt") == b"removed\n"
        with pytest.raises(NotFoundError):
            store.purge(blob=info.oid)
        with pytest.raises(UsageError, match="40 hex"):
            store.purge(blob="xyz")
        with pytest.raises(UsageError, match="one"):
            store.purge("s/u", "out.txt", blob=info.oid)


def test_purge_records_travel_and_every_store_that_syncs_loses_the_bytes(
    tmp_path: Path,
) -> None:
    """The issue's three stores: b and c pulled from a; a purges; b pulls from a (the secret
    goes from b too, its own copies included); c, which added a version on top of the old
    chain, pulls and pushes back to a (nothing brings the secret back, c's version is kept)."""
    with leaky(tmp_path / "a") as a:
        assert a.path is not None
        b, _ = R.clone(a.path, tmp_path / "b")
        c, _ = R.clone(a.path, tmp_path / "c")
        c.put("s/t", {"notes.txt": "from c\n"}, message="c's run")
        a.purge("s/t@v1", "log.log", why="leaked token", apply=True)

        try:
            R.pull(b)
            R.pull(c)
            pushed = R.push(c)
            assert not pushed.refused, pushed.refused
            for store in (a, b, c):
                assert store.path is not None
                assert not objects_hold(store.path, SECRET.encode()), store.path
                assert store.scan() == [], store.path
                fsck(store.path)
            # c's version, put on the old chain, is kept: rebuilt on the purged one.
            assert a.get("s/t", "notes.txt") == b"from c\n"
            assert [v.version for v in a.log("s/t")] == [4, 3, 2, 1]
            assert a.heads() == c.heads()
            assert b"purged by gitstore" in b.get("s/t@v1", "log.log")
        finally:
            b.close()
            c.close()


def test_purge_output_names_remotes_and_rotation(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitstore.cli.main import cli

    with leaky(tmp_path / "a") as a:
        assert a.path is not None
        R.add_remote(a, "backup", str(tmp_path / "elsewhere"))
        dry = CliRunner().invoke(cli, ["--store", a.path, "purge", "s/t@v1", "log.log"])
        assert dry.exit_code == 0, dry.output
        assert "backup" in dry.output and "rotate" in dry.output.lower()
        assert "dry run" in dry.output.lower()
        assert objects_hold(a.path, SECRET.encode())
        done = CliRunner().invoke(cli, ["--store", a.path, "purge", "s/t@v1", "log.log", "--yes"])
        assert done.exit_code == 0, done.output
        assert not objects_hold(a.path, SECRET.encode())
        assert git(a.path, "cat-file", "-t", "refs/gitstore/purges").stdout.strip() == "commit"


def test_show_and_ls_say_what_was_purged(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitstore.cli.main import cli

    with leaky(tmp_path / "a") as a:
        assert a.path is not None
        a.purge("s/u", "out.txt", why="leaked token", apply=True)
        for command in ("show", "ls"):
            result = CliRunner().invoke(cli, ["--store", a.path, command, "s/u"])
            assert result.exit_code == 0, result.output
            assert "out.txt purged on " in result.output
            assert "(leaked token)" in result.output
