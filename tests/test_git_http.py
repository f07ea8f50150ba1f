"""Git smart HTTP: stock git and gitstore fetch and push through a live server, by gitstore's rules.

`gitstore serve` runs in a process of its own on 127.0.0.1; clients are stock git and gitstore
over real sockets.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import CASES, Case, Repo, build_case, version
from serving import Server, make_token
from support import fsck, git, open_store

from gitstore import Store
from gitstore.backend.refs import DiskRefs
from gitstore.remote.serve import receive


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A store with two tasks (and a branch, never served) under `gitstore serve`: its URL."""
    path = tmp_path / "served.git"
    with Store.open(path, create=True) as s:
        s.put("s/t", {"a.txt": "one\n"})
        s.put("s/u", {"b.txt": "two\n"})
    git(path, "update-ref", "refs/heads/main", "refs/artifacts/s/t")
    server = Server(path, tmp_path / "server.log")
    try:
        yield path, server.url + "/"
    finally:
        server.stop()


def refs(gitdir: Path) -> dict[str, str]:
    out = git(gitdir, "for-each-ref", "--format=%(refname) %(objectname)").stdout
    return {name: sha for name, sha in (line.split(" ") for line in out.splitlines())}


def run_git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def test_a_mirror_clone_holds_the_task_refs_and_nothing_else(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = served
    done = run_git("clone", "-q", "--mirror", url, str(tmp_path / "m.git"))
    assert done.returncode == 0, done.stderr
    assert refs(tmp_path / "m.git") == {
        k: v for k, v in refs(path).items() if k.startswith("refs/artifacts/")
    }
    fsck(tmp_path / "m.git")


def test_git_fetch_with_the_task_refspec(served: tuple[Path, str], tmp_path: Path) -> None:
    path, url = served
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "f.git")], check=True)
    done = run_git(
        f"--git-dir={tmp_path / 'f.git'}", "fetch", url, "+refs/artifacts/*:refs/artifacts/*"
    )
    assert done.returncode == 0, done.stderr
    assert refs(tmp_path / "f.git") == {
        k: v for k, v in refs(path).items() if k.startswith("refs/artifacts/")
    }


def test_gitstore_clone_push_pull_and_sync_over_http(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    from gitstore import clone, pull, push, sync

    path, url = served
    mine, _ = clone(url, tmp_path / "mine.git")
    with mine:
        mine.put("s/t", {"a.txt": "changed here\n"})
        mine.put("new/task", {"c.txt": "three\n"})
        pushed = push(mine)
        assert sorted(u.task for u in pushed.updated) == ["new/task", "s/t"]
        with Store.open(path) as server:
            server.put("s/u", {"b.txt": "changed there\n"})
        pulled = pull(mine)
        assert [u.task for u in pulled.updated] == ["s/u"]
        assert sync(mine).refused == []
        with Store.open(path) as server:
            assert server.heads() == mine.heads()
            assert server.verify() == []
    fsck(path)


def test_a_stock_git_push_of_a_pack_over_a_mebibyte_goes_through(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    """Git sends bodies past its post buffer (1 MiB) chunked: the trap of a WSGI app behind ASGI."""
    path, url = served
    local = tmp_path / "local.git"
    assert run_git("clone", "-q", "--mirror", url, str(local)).returncode == 0
    with Store.open(local) as s:
        new = s.put("s/t", {"big.bin": os.urandom(3 << 20)}).commit
    done = run_git(f"--git-dir={local}", "push", url, "refs/artifacts/s/t")
    assert done.returncode == 0, done.stderr
    assert refs(path)["refs/artifacts/s/t"] == new
    fsck(path)
    with Store.open(path) as server:
        assert server.verify() == []


def push_refused(gitdir: Path, url: str, *refspecs: str) -> str:
    done = run_git(f"--git-dir={gitdir}", "push", url, *refspecs)
    assert done.returncode != 0, done.stderr
    assert "[remote rejected]" in done.stderr, done.stderr
    return done.stderr


@pytest.mark.parametrize("case", [c for c in CASES if c.code != 14], ids=lambda c: c.id)
def test_a_hostile_version_pushed_by_stock_git_is_refused(
    served: tuple[Path, str], tmp_path: Path, case: Case
) -> None:
    """Each hostile store of the corpus (its objects all there: stock git can push it)."""
    path, url = served
    git(path, "update-ref", "-d", "refs/artifacts/s/t")  # the push creates the task
    before = refs(path)
    hostile, _ = build_case(case, tmp_path / "evil.git")
    stderr = push_refused(hostile, url, "refs/artifacts/s/t")
    # Refused by the version check, naming the task and the commit (not by a rule on the ref).
    assert "refs/artifacts/s/t (refs/artifacts/s/t" in stderr, stderr
    assert "is refused" in stderr or "not a gitstore version" in stderr, stderr
    assert refs(path) == before


def test_a_push_that_would_rewind_a_task_is_refused(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = served
    other = Repo(tmp_path / "other.git")
    other.set_ref("refs/artifacts/s/t", version(other, {"x.txt": b"unrelated\n"}))
    before = refs(path)
    stderr = push_refused(other.path, url, "+refs/artifacts/s/t")
    assert "pull first" in stderr
    assert refs(path) == before


def test_deleting_a_task_or_pushing_a_branch_is_refused_with_a_reason(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = served
    local = tmp_path / "local.git"
    assert run_git("clone", "-q", "--mirror", url, str(local)).returncode == 0
    before = refs(path)
    assert "rm --task" in push_refused(local, url, ":refs/artifacts/s/u")
    assert "refs/artifacts/SPEC/TASK" in push_refused(local, url, "refs/artifacts/s/u:refs/heads/x")
    assert refs(path) == before


def test_a_push_holding_a_secret_is_refused_naming_where(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = served
    local = tmp_path / "local.git"
    assert run_git("clone", "-q", "--mirror", url, str(local)).returncode == 0
    token = "ghp_" + "A1b2C3d4E5" * 4
    with Store.open(local) as s:
        s.put("s/t", {"log.log": f"export GITHUB_TOKEN={token}\n"})
    before = refs(path)
    stderr = push_refused(local, url, "refs/artifacts/s/t")
    assert "secret-shaped" in stderr and "log.log:1" in stderr
    assert token not in stderr
    assert refs(path) == before


def test_an_atomic_push_with_one_bad_ref_moves_none(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = served
    local = tmp_path / "local.git"
    assert run_git("clone", "-q", "--mirror", url, str(local)).returncode == 0
    with Store.open(local) as s:
        s.put("s/t", {"a.txt": "good\n"})
    git(local, "update-ref", "refs/artifacts/s/u", "refs/artifacts/s/t")  # s/t's version as s/u
    before = refs(path)
    push_refused(local, url, "--atomic", "refs/artifacts/s/t", "+refs/artifacts/s/u")
    assert refs(path) == before


class _RacingRefs(DiskRefs):
    """A ref backend whose first compare-and-swap loses to a local put that lands first."""

    racer: Store | None = None

    def cas(self, name: str, old: str | None, new: str) -> bool:
        racer, _RacingRefs.racer = _RacingRefs.racer, None
        if racer is not None:
            racer.put("s/t", {"a.txt": "a local put during the push\n"})
        return super().cas(name, old, new)


def test_a_push_that_loses_the_race_to_a_local_put_moves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.git"
    with Store.open(path, create=True) as s:
        base = s.put("s/t", {"a.txt": "one\n"}).commit
        new = s.put("s/t", {"a.txt": "two\n"}).commit
    git(path, "update-ref", "refs/artifacts/s/t", base)  # the push builds on v1
    with Store.open(path) as racer, open_store(path, refs=_RacingRefs) as store:
        _RacingRefs.racer = racer
        (result,) = receive(store, [("refs/artifacts/s/t", base, new)])
        assert result[1] is not None and "moved" in result[1]
        kept = racer.show("s/t")
        assert kept.parents == (base,)
        assert racer.get("s/t", "a.txt") == b"a local put during the push\n"


def test_git_over_http_needs_the_tokens_the_api_needs(tmp_path: Path) -> None:
    """Fetch needs read, push needs write, a spec-limited token pushes only its specs."""
    path = tmp_path / "served.git"
    with Store.open(path, create=True) as s:
        s.put("s/t", {"a.txt": "one\n"})
    reader = make_token(path, "reader", "read")
    writer = make_token(path, "writer", "write", spec="other")
    server = Server(path, tmp_path / "server.log")
    host = server.url.removeprefix("http://")
    try:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        anonymous = subprocess.run(
            ["git", "clone", "-q", "--mirror", f"http://{host}/", str(tmp_path / "a.git")],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        # A 401 with a Basic challenge: git asks for credentials (and may not prompt here).
        assert anonymous.returncode != 0
        assert "could not read Username" in anonymous.stderr, anonymous.stderr
        local = tmp_path / "r.git"
        done = run_git("clone", "-q", "--mirror", f"http://x:{reader}@{host}/", str(local))
        assert done.returncode == 0, done.stderr
        with Store.open(local) as s:
            s.put("s/t", {"a.txt": "two\n"})
        before = refs(path)
        denied = run_git(
            f"--git-dir={local}", "push", f"http://x:{reader}@{host}/", "refs/artifacts/s/t"
        )
        assert denied.returncode != 0 and "403" in denied.stderr, denied.stderr
        stderr = push_refused(local, f"http://x:{writer}@{host}/", "refs/artifacts/s/t")
        assert "may not write spec 's'" in stderr
        assert refs(path) == before
    finally:
        server.stop()
