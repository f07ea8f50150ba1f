"""The CLI on a served store: ``--store http://...`` or ``GITSTORE_DIR=http://...``.

The commands a served store answers work as they do on a path; every other one is refused
with one line naming it, exit 2, before anything is done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import empty_refs
from serving import Server, make_token, serve

from gitstore import Store
from gitstore.cli.main import SERVED_COMMANDS, cli


@pytest.fixture
def url(served: Server) -> str:
    """The session's served store, emptied."""
    empty_refs(served.store)
    return served.url


def run(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def one_error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitstore: "), result.stderr
    return lines[0]


def test_put_then_read_back_through_every_reading_command(url: str, tmp_path: Path) -> None:
    (tmp_path / "run.log").write_bytes(b"line 1\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r.json").write_bytes(b'{"ok": true}')
    s = ("--store", url)
    ok(run(*s, "put", "fix/t1", str(tmp_path / "run.log"), "--run", "run-1", "--tag", "k=v"))
    ok(run(*s, "put", "fix/t1", str(tmp_path / "out"), "-m", "second"))
    ok(run(*s, "put", "fix/t2", "-", "--as", "stdin.txt", "--run", "run-2", input=b"piped\n"))
    assert ok(run(*s, "ls")).stdout.split() == ["SPEC", "TASKS", "fix", "2"]
    assert [line.split()[0] for line in ok(run(*s, "ls", "fix")).stdout.splitlines()] == [
        "TASK",
        "t1",
        "t2",
    ]
    listed = json.loads(ok(run(*s, "ls", "fix/t1", "--json")).stdout)
    assert [a["name"] for a in listed["artifacts"]] == ["out/r.json", "run.log"]
    assert ok(run(*s, "get", "fix/t1", "run.log")).stdout_bytes == b"line 1\n"
    assert ok(run(*s, "get", "fix/t2", "stdin.txt", "--verify")).stdout_bytes == b"piped\n"
    ok(run(*s, "get", "fix/t1@v1", "run.log", "-o", str(tmp_path / "copy.log")))
    assert (tmp_path / "copy.log").read_bytes() == b"line 1\n"
    log = json.loads(ok(run(*s, "log", "fix/t1", "--json")).stdout)
    assert [v["version"] for v in log] == [2, 1]
    assert ok(run(*s, "show", "fix/t1", "run.log", "--json")).stdout.count('"k": "v"') == 1
    assert ok(run(*s, "diff", "fix/t1")).stdout.splitlines()[1:] == ["A out/r.json  12 B"]
    found = json.loads(ok(run(*s, "find", "--run", "run-2", "--json")).stdout)
    assert [(v["spec"], v["task"]) for v in found] == [("fix", "t2")]
    history = ok(run(*s, "log", "--jsonl", "fix")).stdout.splitlines()
    assert len(history) == 3
    ok(run(*s, "export", "fix/t1", str(tmp_path / "exported")))
    assert (tmp_path / "exported" / "out" / "r.json").read_bytes() == b'{"ok": true}'


def test_rm_rm_task_and_rm_run_change_the_served_store(url: str, served: Server) -> None:
    s = ("--store", url)
    ok(run(*s, "put", "rm/t1", "-", "--as", "a", input=b"a"))
    ok(run(*s, "put", "rm/t1", "-", "--as", "b", input=b"b"))
    ok(run(*s, "put", "rm/t2", "-", "--as", "a", "--run", "doomed", input=b"a"))
    assert "v3" in ok(run(*s, "rm", "rm/t1", "a")).stdout
    assert "deleted rm/t1" in ok(run(*s, "rm", "rm/t1", "--task", "--yes")).stdout
    assert "deleted rm/t2" in ok(run(*s, "rm-run", "doomed", "--yes")).stdout
    with Store.open(served.store) as local:
        assert local.heads() == {}


def test_gitstore_dir_may_be_a_url(url: str) -> None:
    env = {"GITSTORE_DIR": url}
    ok(run("put", "env/t", "-", "--as", "a.txt", env=env, input=b"from the environment"))
    assert ok(run("get", "env/t", "a.txt", env=env)).stdout == "from the environment"


LOCAL_ONLY = [
    ["init"],
    ["verify"],
    ["gc"],
    ["du"],
    ["purge", "--blob", "0" * 40],
    ["scan"],
    ["remote", "ls"],
    ["clone", "http://127.0.0.1:1/", "elsewhere"],
    ["push"],
    ["pull"],
    ["sync"],
    ["bundle", "create", "x.bundle"],
    ["serve"],
    ["token", "ls"],
    ["alias", "ls"],
    ["retain", "--keep-last", "1"],
]


@pytest.mark.parametrize("args", LOCAL_ONLY, ids=lambda a: a[0])
def test_commands_that_need_the_stores_files_are_refused_in_one_line(
    url: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run("--store", url, *args), 2)
    assert f"{args[0]} needs a store on this machine; {url} is a served store" in line
    assert list(tmp_path.iterdir()) == []


def test_every_command_is_either_served_or_refused() -> None:
    # A new command must be placed on one side on purpose: added to SERVED_COMMANDS (and to
    # the README's list) or to the refused ones tested above.
    assert set(cli.commands) == SERVED_COMMANDS | {args[0] for args in LOCAL_ONLY}


def test_a_refused_command_still_shows_its_help(url: str) -> None:
    assert "Usage: gitstore verify" in ok(run("--store", url, "verify", "--help")).stdout


def test_an_unreachable_served_store_exits_11() -> None:
    line = one_error_line(run("--store", "http://127.0.0.1:1", "ls"), 11)
    assert "cannot reach the server (Connection refused)" in line


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    tmp = tmp_path_factory.mktemp("cli-guarded")
    path = tmp / "store.git"
    Store.open(path, create=True).close()
    secret = make_token(path, "reader", "read")
    for server in serve(tmp, store=path):
        yield server, secret


def test_the_token_comes_from_gitstore_token(guarded: tuple[Server, str]) -> None:
    server, secret = guarded
    ok(run("--store", server.url, "ls", env={"GITSTORE_TOKEN": secret}))
    line = one_error_line(run("--store", server.url, "ls", env={"GITSTORE_TOKEN": "gst_x"}), 12)
    assert "the token is not known" in line and "gst_x" not in line
    line = one_error_line(
        run("--store", server.url, "put", "s/t", "-", "--as", "a", env={"GITSTORE_TOKEN": secret}),
        12,
    )
    assert "scope read" in line
