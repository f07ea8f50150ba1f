"""The commands between machines: remote, clone, push, pull, sync, bundle; output and exit codes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from click.testing import CliRunner, Result
from support import fsck

from gitstore import Store
from gitstore.cli.main import cli


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def ok(store: Path, *args: str) -> Result:
    result = run(store, *args)
    assert result.exit_code == 0, result.output
    return result


def test_remote_commands(tmp_path: Path) -> None:
    a = tmp_path / "a.git"
    ok(a, "init")
    ok(a, "remote", "add", "origin", str(tmp_path / "r.git"))
    listed = json.loads(ok(a, "remote", "ls", "--json").stdout)
    assert listed == [{"name": "origin", "url": str(tmp_path / "r.git")}]
    assert run(a, "remote", "add", "x", "https://u:pw@example.invalid/r").exit_code == 2
    ok(a, "remote", "rm", "origin")
    assert run(a, "remote", "rm", "origin").exit_code == 4
    assert ok(a, "remote", "ls").stdout == ""


def test_push_pull_clone_sync_and_refusal(tmp_path: Path) -> None:
    a, b, r = tmp_path / "a.git", tmp_path / "b.git", tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(r)], check=True)
    with Store.open(a, create=True) as s:
        s.put("s/t", {"x.txt": "base"})
        s.put("s/u", {"x.txt": "u"})
    ok(a, "remote", "add", "origin", str(r))
    pushed = json.loads(ok(a, "push", "--json").stdout)
    assert [u["task"] for u in pushed["updated"]] == ["s/t", "s/u"]
    assert pushed["objects"] > 0 and pushed["refused"] == []
    cloned = ok(b, "clone", str(r))
    assert "cloned into" in cloned.stdout
    with Store.open(a) as sa:
        sa.put("s/t", {"x.txt": "from a"})
        sa.put("s/u", {"x.txt": "u2"})
    time.sleep(1.05)
    with Store.open(b) as sb:
        sb.put("s/t", {"x.txt": "from b"})
    ok(b, "push", "s/t")
    refused = run(a, "push", "origin")
    assert refused.exit_code == 10
    assert "refused" in refused.stdout and "s/t" in refused.stderr
    assert "pull first" in refused.stderr
    pulled = json.loads(ok(a, "pull", "--json").stdout)
    assert pulled["merged"][0]["task"] == "s/t"
    assert pulled["merged"][0]["conflicts"] == ["x.txt"]
    assert ok(a, "get", "s/t", "x.txt").stdout == "from b"
    synced = json.loads(ok(a, "sync", "--json").stdout)
    assert synced["refused"] == []
    ok(b, "sync")
    with Store.open(a) as sa, Store.open(b) as sb:
        assert sa.heads() == sb.heads()
    fsck(r)


def test_bundle_commands(tmp_path: Path) -> None:
    a, b = tmp_path / "a.git", tmp_path / "b.git"
    with Store.open(a, create=True) as s:
        s.put("s/t", {"x.txt": "1"})
    made = ok(a, "bundle", "create", str(tmp_path / "x.bundle"))
    assert "bundled 1 task" in made.stdout
    got = json.loads(ok(b, "bundle", "import", str(tmp_path / "x.bundle"), "--json").stdout)
    assert got["updated"][0]["task"] == "s/t"
    (tmp_path / "bad.bundle").write_bytes(b"nope\n")
    assert run(b, "bundle", "import", str(tmp_path / "bad.bundle")).exit_code == 14
    assert run(b, "bundle", "create", str(tmp_path / "y.bundle"), "nosuchspec").exit_code == 4


def test_error_exit_codes_leave_the_store_alone(tmp_path: Path) -> None:
    a = tmp_path / "a.git"
    with Store.open(a, create=True) as s:
        s.put("s/t", {"x.txt": "1"})
        heads = s.heads()
    missing = run(a, "pull", str(tmp_path / "missing.git"))
    assert missing.exit_code == 11 and missing.stderr.count("\n") == 1
    (tmp_path / "plain").mkdir()
    assert run(a, "push", str(tmp_path / "plain")).exit_code == 13
    assert run(a, "push").exit_code == 2  # no origin
    with Store.open(a) as s:
        assert s.heads() == heads
